"""Why a round failed, in a mentor's words: the class of failure and what to change.

Seed 000's log reads "unknown, logs lost" three times. Here every failure gets a class and advice
that names the knobs of *this* round:

- ``out of memory``: halve the batch and double accumulation (same effective batch), shorten
  ``max_length``, turn on gradient checkpointing, load the base in 4 bit.
- ``data format``: the row and field of each problem (``ftlab.data.DataFormatError``).
- ``divergence``: NaN / inf / exploding loss; a learning rate ten times lower, read with LoRA's alpha / r.
- ``fp16 overflow``: in fp16 mixed precision (a T4, or one rehearsed on the CPU) a loss or gradient became inf or
  NaN because a number passed fp16's largest, 65,504: clip harder, keep the trainables in fp32, a lower rate.
- ``accuracy collapse``: the loss stayed finite but a task score fell to (near) zero or far below the other
  rounds' on the same eval rows (seed 004's lr 1.5e-3: overall accuracy 0.0); the round is recorded as "collapsed".
- ``preference collapse`` and ``margin explosion``: a preference round (chapter 08) whose chosen answers became
  unlikely (DPO widened the margin by pushing both answers down), or whose reward margin ran past any sensible size;
  the round is recorded as "collapsed" or "diverged", with advice on beta, the step size and the pairs.
- ``interrupted``: Ctrl-C, a kernel restart, a disconnect, a killed process; how to resume.
- ``configuration``: a knob that cannot work (``ftlab.ConfigError``).
- ``unknown``: anything else; the full traceback is kept in ``traceback.txt``.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import asdict, dataclass, field

from ftlab.config import ConfigError, lora_scale_note
from ftlab.data.errors import DataFormatError
from ftlab.lab.directions import known

OOM = "out of memory"
DATA = "data format"
DIVERGENCE = "divergence"
FP16_OVERFLOW = "fp16 overflow"
FP16_LARGEST = 65504  # the largest finite fp16 number: one step above it is inf
COLLAPSE = "accuracy collapse"
PREFERENCE_COLLAPSE = "preference collapse"
MARGIN_EXPLOSION = "margin explosion"
INTERRUPTED = "interrupted"
CONFIGURATION = "configuration"
UNKNOWN = "unknown"
OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "cublas_status_alloc_failed",
             "not enough memory")


@dataclass
class Failure:
    """What went wrong in a round: ``kind`` (one of the classes above), the error, and advice."""

    kind: str
    message: str
    advice: str
    findings: list[dict] = field(default_factory=list)  # data format: one per bad row and field
    traceback: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}\n{self.advice}"


def classify(error: BaseException, config=None, resume_hint: str = "") -> Failure:
    """The failure class of ``error`` with advice for ``config`` (a RoundConfig, or None)."""
    message = f"{type(error).__name__}: {error}".strip()
    trace = "".join(traceback.format_exception(error))
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return interrupted("stopped by hand (KeyboardInterrupt) or the kernel", resume_hint)
    if is_out_of_memory(error):
        return Failure(OOM, _first_line(message), oom_advice(config, error), traceback=trace)
    if isinstance(error, DataFormatError):
        findings = [{"row": f.row, "field": f.field, "message": f.message, "file": f.file} for f in error.findings]
        return Failure(DATA, _first_line(message), data_advice(findings), findings, trace)
    if isinstance(error, ConfigError):
        return Failure(CONFIGURATION, str(error), "Change the knob named above; RoundConfig's help for it "
                       "(print the config) says what values work.", traceback=trace)
    last = trace.strip().splitlines()[-1] if trace.strip() else message
    return Failure(UNKNOWN, _first_line(message),
                   f"ftlab does not recognise this error. The full traceback is in traceback.txt; its last line "
                   f"is:\n  {last}\nSearch that line in the issues of transformers, TRL and PEFT, or show a mentor "
                   "traceback.txt and round.json.", traceback=trace)


def interrupted(why: str, resume_hint: str = "") -> Failure:
    return Failure(INTERRUPTED, why, resume_hint or "Run the round again; nothing was checkpointed to resume from.")


def divergence(reason: str, config=None) -> Failure:
    lr = getattr(config, "learning_rate", None)
    advice = [f"Lower the learning rate ten times or more: {lr / 10:g} instead of {lr:g}." if lr else
              "Lower the learning rate ten times or more."]
    if config is not None and not config.warmup:
        advice.append("Add a warm-up (warmup=0.03 or a few dozen steps) so the first steps are small.")
    if config is not None and config.max_grad_norm > 1:
        advice.append(f"Clip gradients: max_grad_norm 1.0 (QLoRA used 0.3) instead of {config.max_grad_norm:g}.")
    advice += learning_rate_story(config)
    return Failure(DIVERGENCE, reason, "\n".join(advice))


def fp16_overflow(reason: str, config=None) -> Failure:
    """An inf or NaN loss or gradient in fp16 mixed precision, and its fixes for ``config`` (a RoundConfig or None)."""
    lr = getattr(config, "learning_rate", None)
    clip = getattr(config, "max_grad_norm", None)
    advice = [f"fp16 holds numbers up to {FP16_LARGEST:,}: a value past it becomes inf, and inf - inf or 0 x inf "
              "NaN. The gradient scaler skips a step whose gradients overflow and lowers its scale, but it cannot "
              "help when the loss itself overflows or every step's gradients do. The fixes, cheapest first:",
              (f"- Clip gradients harder: max_grad_norm {clip:g} -> 0.3 (QLoRA's)." if clip is not None and clip > 0.3
               else "- Clip gradients: max_grad_norm 0.3 (QLoRA's) keeps one large gradient from blowing up a step."),
              "- Keep every trainable weight in fp32: ftlab does (ftlab.round.train.keep_trainables_fp32); a LoRA "
              "weight cast to fp16 by hand overflows at 65,504 and its gradients cannot be unscaled (\"Attempting "
              "to unscale FP16 gradients\").",
              f"- Lower the learning rate: {lr / 10:g} instead of {lr:g}." if lr else "- Lower the learning rate "
              "ten times.",
              "A GPU of compute capability 8.0 or newer could train in bf16 instead, which has fp32's range (a T4 "
              "cannot: it is 7.5)."]
    return Failure(FP16_OVERFLOW, reason, "\n".join(advice))


def learning_rate_story(config=None) -> list[str]:
    """What the learning rate means with this round's LoRA scale, and seed 004's story: lines of advice."""
    lines = [f"{lora_scale_note(config)}. Lowering lora_alpha calms the steps as lowering the learning rate "
             "does."] if config is not None else []
    return [*lines, "Seed 004's lr 1.5e-3 (r 32, alpha 128, its log never names the model) collapsed its overall accuracy "
            "to 0.0 where 3e-4 gave its best, 0.31 (its log: above 1e-3 training collapses); seed 003 trained "
            "TinyLlama at 2e-5..2e-4 (r 8, alpha 32). Each model and LoRA scale has its own range, ftlab's tiny "
            "one larger rates: ftlab.lr_find measures yours."]


# ------------------------------------------------------------------------------------------ collapse
NEAR_ZERO = 0.02  # a share of answers this small is no answer right: the task was lost, not learned less well
FAR_BELOW = 0.25  # below a quarter of what the other rounds reached on the same eval rows
COLLAPSE_RULE = (f"a score that is better higher fell below {FAR_BELOW:g} x the median of the other succeeded rounds "
                 f"on the same eval rows (near zero, at most {NEAR_ZERO:g}, counts once they reached more than "
                 f"{NEAR_ZERO:g}) while the train loss stayed finite")


def collapse(scores: dict, reference: dict, config=None, train_loss: float | None = None) -> Failure | None:
    """An accuracy collapse (``COLLAPSE_RULE``) among ``scores``, against ``reference``: each score's median
    over the other rounds on the same eval rows (``ftlab.lab.repeats.reference_scores``); None if none fell.

    Only scores known to be better higher are read (``ftlab.lab.directions``); a loss that is not finite is a
    divergence, not a collapse.
    """
    if train_loss is None or not math.isfinite(train_loss):
        return None
    fallen = [(name, value, reference[name]) for name, value in scores.items()
              if known(name) is True and isinstance(value, int | float) and name in reference
              and reference[name] > NEAR_ZERO and value < max(FAR_BELOW * reference[name], NEAR_ZERO + 1e-12)]
    if not fallen:
        return None
    said = ", ".join(f"{name} {value:.3g} where the other rounds on these eval rows reached {ref:.3g} (median)"
                     for name, value, ref in fallen)
    lr = getattr(config, "learning_rate", None)
    advice = [f"The model trained (train loss {train_loss:.3g}, finite) but stopped giving the answers: too large a "
              "step usually does this before it makes the loss blow up.",
              f"Lower the learning rate 3 times or more: {lr / 3:.2g} instead of {lr:g}." if lr else
              "Lower the learning rate 3 times or more."]
    advice += learning_rate_story(config)
    advice.append("Read its answers (round.samples()): empty, repeated or off-format "
                  "answers are the same collapse.")
    return Failure(COLLAPSE, f"{said}; the train loss stayed finite", "\n".join(advice))


# ------------------------------------------------------------------------------------------ preference rounds
def preference_failure(kind: str, reason: str, config=None, beta: float | None = None) -> Failure:
    """A preference round stopped by ``ftlab.lab.watchers.PreferenceGuard``: why, and what to change
    (``config``: the round's RoundConfig; ``beta``: its PreferenceConfig.beta)."""
    lr = getattr(config, "learning_rate", None)
    step = f"Lower the learning rate 3-10 times: {lr / 5:.2g} instead of {lr:g}." if lr else \
        "Lower the learning rate 3-10 times."
    if kind == PREFERENCE_COLLAPSE:
        advice = ["DPO rewards the gap between chosen and rejected, not the chosen answer itself: a large step can "
                  "widen the gap by making both answers unlikely, and the model then writes neither.", step,
                  f"Raise beta (now {beta:g}) to hold the model closer to the SFT round." if beta else
                  "Raise beta to hold the model closer to the SFT round.",
                  "Check the pairs: a chosen answer the SFT model finds unlikely (another style, another format) "
                  "is pushed down with the rejected one. 'ipo' (loss_type) stops pushing at a set margin."]
    else:
        advice = ["The rewards' margin grew without bound: sigmoid(margin) is 1 to float precision, and the policy "
                  "has run far from the reference (often by making the rejected answers vanishingly unlikely).", step,
                  f"Raise beta (now {beta:g}), or use loss_type='ipo', whose loss stops at a set margin." if beta else
                  "Raise beta, or use loss_type='ipo', whose loss stops at a set margin.",
                  "Fewer steps: a few hundred pairs are learned in one pass."]
    return Failure(kind, reason, "\n".join(advice))


# ------------------------------------------------------------------------------------------ memory
def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and any(w in str(error).lower() for w in OOM_WORDS)


def oom_advice(config=None, error: BaseException | None = None) -> str:
    """What to change, biggest saving first, with this round's numbers."""
    on_cpu = isinstance(error, MemoryError) or "DefaultCPUAllocator" in str(error)
    lines = ["The round needed more memory than the " + ("machine's RAM has (Colab: ~12.7 GB)." if on_cpu else
                                                         "GPU has (a T4: ~14.7 GiB usable).")]
    if config is not None:
        b, g = config.batch_size, config.gradient_accumulation_steps
        if b > 1:
            lines.append(f"- batch_size {b} -> {b // 2} with gradient_accumulation_steps {g} -> {g * 2}: the same "
                         f"effective batch of {b * g}, half the activations.")
        if config.max_length >= 128:
            lines.append(f"- max_length {config.max_length} -> {config.max_length // 2} (ftlab.templates.length_report "
                         "shows how many rows that would cut).")
        if not config.gradient_checkpointing:
            lines.append("- gradient_checkpointing=True: recompute activations, far less memory, ~30% slower.")
        if config.quantization is None:
            lines.append("- QLoRA: quantization='4bit' and load the base with ftlab.load_model(quantization='4bit').")
    else:
        lines.append("- Smaller batch_size with more gradient_accumulation_steps, shorter max_length, "
                     "gradient_checkpointing=True, or a 4-bit base.")
    lines += _fit_planner_hint()
    lines.append("ftlab drops the failed round's model and empties torch's CUDA cache; memory your own variables "
                 "still hold (a model from an earlier cell) stays taken. torch.cuda.memory_allocated() shows what is "
                 "left; if the next round fails the same way, restart the runtime.")
    return "\n".join(lines)


def _fit_planner_hint() -> list[str]:
    return ["- ftlab.plan(config=...) says what fits before you start, and ftlab.suggest(...) the fastest "
            "configuration that does: help(ftlab.plan)."]


# ------------------------------------------------------------------------------------------ data
def data_advice(findings: list[dict], shown: int = 5) -> str:
    lines = ["Fix these rows, then train again:"]
    for f in findings[:shown]:
        where = ", ".join(x for x in (f.get("file"), f"row {f['row']}" if f.get("row") is not None else None,
                                      f"field {f['field']!r}" if f.get("field") else None) if x)
        lines.append(f"- {where or 'the data'}: {f['message']}")
    if len(findings) > shown:
        lines.append(f"- ... and {len(findings) - shown} more (round.json lists them all)")
    return "\n".join(lines)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
