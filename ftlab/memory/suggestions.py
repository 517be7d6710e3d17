"""The fastest configuration that fits, chosen from ``ftlab.plan``'s predictions, and the check a round runs.

``ftlab.suggest(effective_batch=16, lengths=..., gpu="T4")`` tries 16-bit and 4-bit weights, gradient
checkpointing on and off, padded, length-grouped and padding-free batches, and every micro-batch that
divides the effective batch; it keeps those whose plan fits with a margin and returns the one with the
shortest estimated epoch. It never proposes a configuration that ``plan()`` says does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from ftlab.config import ATTENTION, RoundConfig
from ftlab.console.lines import warn
from ftlab.memory.estimate import Plan, checked_lengths, padding_of, plan
from ftlab.memory.gpus import gpu_for
from ftlab.memory.shapes import PlanInputError, model_shape
from ftlab.models.loading import DEFAULT_MODEL

SPEED_ORDER = ("padding_free", "group", "pad")


@dataclass
class Suggestion:
    """The chosen plan, the RoundConfig knobs that give it, and the runners-up."""

    plan: Plan
    knobs: dict  # RoundConfig fields: batch_size, gradient_accumulation_steps, quantization, ...
    considered: list[Plan]
    margin: float

    def config(self, preset: str = "t4-lora", **overrides):
        """A RoundConfig from ``preset`` with the suggested knobs (and ``overrides``)."""
        return RoundConfig.preset(preset, **{**self.knobs, **overrides})

    def __repr__(self) -> str:
        fitting = sorted((p for p in self.considered if p.fits_with(self.margin)), key=lambda p: p.epoch_s)
        rows = [f"  {_label(p):<52} {p.peak_gib:>6.2f} GiB  ~{p.epoch_s / 60:>6.1f} min" for p in fitting[:6]]
        left_out = len(self.considered) - len(fitting)
        return "\n".join([f"Suggestion: {', '.join(f'{k}={v!r}' for k, v in self.knobs.items())}",
                          f"  fastest of {len(fitting)} configurations that fit with {self.margin:.0%} to spare "
                          f"({left_out} did not); times are estimates unless the plan says calibrated:",
                          *rows, "", repr(self.plan)])


def _label(p: Plan) -> str:
    s = p.settings
    return (f"{s['quantization'] or s['precision']}, ckpt {'on' if s['gradient_checkpointing'] else 'off'}, "
            f"{s['padding']}, micro-batch {s['batch_size']}")


def suggest(effective_batch: int = 16, lengths=None, gpu="T4", model=DEFAULT_MODEL,
            lora_r: int = 16, target_modules=ATTENTION, max_length: int | None = None, rows: int | None = None,
            margin: float = 0.10, quantizations=(None, "4bit"), paddings=SPEED_ORDER, optim: str = "adamw_torch",
            calibration=None) -> Suggestion:
    """The fastest (quantization, checkpointing, padding, micro-batch) whose plan fits with ``margin`` free.

    ``lengths``: the token count of every training row (their longest sets the peak, all of them the
    time). Without them, ``max_length`` and ``rows`` stand in (every row counted as the longest).
    """
    if lengths is None and (max_length is None or rows is None):
        raise PlanInputError("give the rows' token lengths (lengths=...), or max_length and rows")
    lengths = checked_lengths(lengths)
    if isinstance(effective_batch, bool) or not isinstance(effective_batch, int) or effective_batch < 1:
        raise PlanInputError(f"effective_batch={effective_batch!r}: a whole number >= 1")
    max_length = max_length or max(lengths)
    shape = model_shape(model)
    micro = [b for b in range(1, effective_batch + 1) if effective_batch % b == 0]
    considered = [plan(shape, quantization=q, lora_r=lora_r, target_modules=target_modules, batch_size=b,
                       max_length=max_length, gradient_checkpointing=ckpt, gpu=gpu, lengths=lengths, rows=rows,
                       padding=pad, optim=optim, calibration=calibration,
                       gradient_accumulation_steps=effective_batch // b)
                  for q, ckpt, pad, b in product(quantizations, (False, True), paddings, micro)]
    fitting = [p for p in considered if p.fits_with(margin)]
    if not fitting:
        smallest = min(considered, key=lambda p: p.total_bytes)
        raise PlanInputError(f"nothing fits on a {smallest.gpu.name} with {margin:.0%} to spare; the smallest "
                             f"plan needs {smallest.peak_gib:.2f} GiB: {smallest.advice()}")
    best = min(fitting, key=lambda p: (p.epoch_s, p.total_bytes))
    s = best.settings
    knobs = dict(batch_size=s["batch_size"], gradient_accumulation_steps=effective_batch // s["batch_size"],
                 quantization=s["quantization"], gradient_checkpointing=s["gradient_checkpointing"],
                 padding_free=s["padding"] == "padding_free", group_by_length=s["padding"] == "group",
                 max_length=max_length)
    return Suggestion(best, knobs, considered, margin)


def warn_if_it_does_not_fit(config, model, gpu_name: str | None, memory_gib: float | None,
                            margin: float = 0.0) -> Plan | None:
    """Plan ``config`` for ``model`` on this GPU before training; warn, naming the change, when it does not fit.

    A GPU the planner knows by name keeps its speed constants, with the memory torch reports.
    """
    try:
        predicted = plan(model_shape(model), config=config, gpu=gpu_for(gpu_name, memory_gib))
    except PlanInputError as error:  # a model the planner cannot size: say so, train anyway
        warn(f"ftlab.plan could not size this round ({error}); training without a memory check",
                      stacklevel=3)
        return None
    if not predicted.fits_with(margin):
        warn(f"This round is predicted NOT to fit on the {predicted.gpu.name}: {predicted.peak_gib:.2f} "
                      f"GiB needed, {predicted.gpu.memory_gib:.2f} GiB there; {predicted.advice()}. "
                      f"ftlab.plan(config=...) shows every term.", stacklevel=3)
    return predicted


__all__ = ["Suggestion", "suggest", "warn_if_it_does_not_fit", "padding_of"]
