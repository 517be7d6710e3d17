"""A T4 rehearsed on the CPU (``FTLAB_REHEARSE=T4``): the GPU's fp16 mixed precision run by the CPU, and the record.

transformers' Trainer hands ``fp16=True`` to accelerate, whose ``Accelerator`` switches fp16 on only for a GPU-like
device: on the CPU it keeps neither autocast nor a gradient scaler (accelerate 1.15, ``Accelerator.__init__``:
``native_amp`` only when ``device.type != "cpu"``), and the round silently trains in the weights' own precision.
torch runs both on the CPU (``torch.autocast("cpu", dtype=torch.float16)``, ``torch.amp.GradScaler("cpu")``), so
``rehearse_mixed_precision`` gives the trainer's accelerator what accelerate gives it on a T4: ``native_amp`` (the
model's forward runs under fp16 autocast once prepared) and a gradient scaler (the loss scaled before backward,
the gradients unscaled before clipping, a step with inf or NaN gradients skipped and the scale halved, then grown
again). That is the T4's code path step for step, computed by the CPU's kernels; ``tests/test_rehearsal.py``
checks each part of it.

``rehearsal_record`` is what a rehearsed round says about itself (``RoundResult.rehearsal``, the lab's record):
which GPU it rehearsed, where it ran, and what a rehearsal cannot show.
"""

from __future__ import annotations

from ftlab.machine import REHEARSAL_CANNOT_SHOW, rehearsal


def rehearse_mixed_precision(trainer) -> bool:
    """Give ``trainer``'s accelerator fp16 autocast and a gradient scaler on the CPU, as on a GPU; True if it did.

    Only while rehearsing a GPU whose round trains in fp16, and before ``trainer.train()`` prepares the model and
    the optimizer (the scaler goes to the optimizer when it is prepared).
    """
    import torch

    accelerator = trainer.accelerator
    if rehearsal() is None or accelerator.mixed_precision != "fp16" or accelerator.native_amp:
        return False
    accelerator.native_amp = True
    accelerator.scaler = torch.amp.GradScaler("cpu")
    return True


def rehearsal_record() -> dict | None:
    """What a round rehearsed on the CPU says about itself; None when nothing is rehearsed."""
    gpu = rehearsal()
    if gpu is None:
        return None
    return {"gpu": gpu.name, "capability": "{}.{}".format(*gpu.capability), "memory_gib": gpu.memory_gib,
            "ran_on": "cpu", "cannot_show": list(REHEARSAL_CANNOT_SHOW)}


def rehearsal_line(record: dict | None) -> str | None:
    """The record as one line for a summary or a verdict."""
    if not record:
        return None
    return (f"rehearsed on the CPU as a {record['gpu']} (cc {record['capability']}): its code path ran; not shown: "
            + "; ".join(record["cannot_show"]))
