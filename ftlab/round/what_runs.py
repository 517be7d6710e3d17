"""What a round's knobs become on this machine: the precision, optimiser and quantization that run, and why.

One rule for a knob this machine cannot honour: **substitute what runs here and record it visibly**, never
refuse. fp16 or bf16 where the hardware lacks them becomes the precision ``precision='auto'`` picks here; a
paged or 8-bit optimiser on a CPU becomes ``adamw_torch``. Both are the same update computed as this machine
can, so the round still tests the knobs that were meant, and a config written for a T4 runs unchanged on a
laptop (the course's chapters run the same cells on both). A T4 rehearsed on the CPU (``FTLAB_REHEARSE=T4``)
substitutes nothing a T4 would run: its fp16 really runs (``ftlab.round.rehearsal``), and so does 8-bit AdamW
(bitsandbytes' CPU backend; a paged one runs unpaged there, which the rehearsal names among what it cannot show). A ``quantization`` the model was not loaded with
cannot be applied by training either: the model trains as it was loaded, recorded the same way. 4-bit itself
runs on a CPU (bitsandbytes has a CPU backend), so it is never substituted.

Each substitution (knob, asked, used, why) is printed before training, kept in the ``RoundResult`` and the
lab's ``round.json``, and shown in ``lab.table()`` / ``ftlab runs`` as ``adamw_torch (asked paged_adamw_8bit)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WhatRuns:
    """The precision, optimiser and quantization (None: none) that run, and each substitution with its reason."""

    precision: str
    optimizer: str
    quantization: str | None
    substitutions: list[dict] = field(default_factory=list)  # {"knob", "asked", "used", "why"}


def model_quantization(model) -> str | None:
    """How the model's weights were loaded: '4bit', '8bit' or None."""
    if getattr(model, "is_loaded_in_4bit", False):
        return "4bit"
    if getattr(model, "is_loaded_in_8bit", False):
        return "8bit"
    return None


def what_runs(config, model, env_precision: str, gpu_name: str | None, on_gpu: bool) -> WhatRuns:
    """What ``config`` becomes for ``model`` on a machine whose own precision is ``env_precision``; ``on_gpu``:
    the GPU's code path runs here (a GPU, or a GPU rehearsed on the CPU)."""
    changes = []
    precision, why = config.resolve_precision(env_precision, gpu_name)
    if why:
        changes.append({"knob": "precision", "asked": config.precision, "used": precision, "why": why})
    optimizer, why = config.optimizer(on_gpu)
    if why:
        changes.append({"knob": "optim", "asked": config.optim, "used": optimizer, "why": why})
    loaded = model_quantization(model)
    if config.quantization != loaded:
        how = f"ftlab.load_model(..., quantization={config.quantization!r})" if config.quantization else \
            "ftlab.load_model(...) without quantization"
        changes.append({"knob": "quantization", "asked": config.quantization, "used": loaded,
                        "why": f"the model was loaded {'in ' + loaded if loaded else 'without quantization'} and "
                               f"trains as loaded; for {config.quantization or 'no quantization'} load it with {how}"})
    return WhatRuns(precision, optimizer, loaded, changes)


def note(change: dict) -> str:
    """One substitution as the line printed before training."""
    return f"Note: {change['knob']} {change['asked']} -> {change['used']}: {change['why']}."
