"""``ftlab.plan``'s T4 times beside the T4 runs that were measured and published, with each row's assumptions.

No GPU has run ftlab yet, so its T4 time model is held against other people's T4 runs of TinyLlama:

* **Seed 003** (``shared/seeds/003``): five LoRA rounds of TinyLlama-1.1B-Chat (r 8, alpha 32 on q_proj and
  v_proj, dropout 0.1, fp16, gradient checkpointing) on Alpaca's first 2,600 rows, on a Kaggle or Colab T4:
  7m01s, 8m54s, 11m23s, 6m39s and 6m45s for (epochs, batch x accumulation) = (3, 4 x 8), (4, 8 x 4), (5, 8 x 4),
  (3, 8 x 4), (3, 8 x 4): about 19 rows a second in every round.
* **Unsloth's TinyLlama notebook**: 3,000 packed rows of 4,096 tokens in 5,034.6 s, peak reserved 13.5 GB
  (4-bit, LoRA r 32 on all linear layers, batch 2 x 4, no gradient checkpointing). Unsloth runs its own Triton
  kernels (fused 4-bit dequantization, cross-entropy, RoPE), not the stock transformers path ftlab plans.
* **fitcheck-llm** reports ten T4 runs, of peak memory only, and calls itself a sizing tool, not a throughput
  benchmark: no published step time of TinyLlama on a T4 was found there to hold the plan against.

The row lengths are an assumption (``alpaca_lengths``): Alpaca's token lengths under TinyLlama's chat template
cannot be counted offline (neither the data set nor TinyLlama's tokenizer is here). Alpaca's published size
gives the mean: a copy with its instruction, input, output and templated text columns holds 33,409,057 bytes
for 36,401 rows, ~918 bytes a row; less the Alpaca template's own ~166 characters (40% of rows have an input)
and the columns' offsets, ~368 characters of instruction, input and output, ~92 Llama tokens at 4 characters a
token (English prose), and ~17 tokens of TinyLlama's chat template around them: a mean of ~110 tokens. The
spread is a log-normal of sigma 0.6 (short answers beside essays), capped at TinyLlama's 2,048.

What the comparison showed (``compare()`` computes it; tests/test_plan.py holds it to its bounds):
``achieved_tflops`` for a T4 was 16, an estimate: at Alpaca's lengths seed 003's batch-4 round then ran 1.5x
faster than planned, and 24 TFLOPS (a T4's sustained fp16 matmul rate under its 70 W cap) explains it. No one
assumption explains the rest: the batch-8 rounds ran ~5% faster per row than the batch-4 round although padding
to the longest of 8 rows processes more positions, and the plan, with one rate for every micro-batch, charges
them ~20% more (a T4 busier with bigger matmuls, or rows padded to one fixed length in the seed's code, would
each explain it; the report does not say). Unsloth's run took longer than planned at 24 TFLOPS with the 1.5x
4-bit slowdown, and its peak memory is far below the plan's for the stock path (its kernels keep less).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ftlab.config import ALL_LINEAR
from ftlab.memory.estimate import plan

# Alpaca's published size: a copy with instruction, input, output and templated text columns (Arrow strings)
ALPACA_COPY_BYTES, ALPACA_COPY_ROWS = 33_409_057, 36_401
ALPACA_TEMPLATES = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                    "the request.\n\n### Instruction:\n\n\n### Response:\n",
                    "Below is an instruction that describes a task, paired with an input that provides further "
                    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n\n\n"
                    "### Input:\n\n\n### Response:\n")
ALPACA_WITH_INPUT = 0.4  # the share of rows with an input (an assumption, as are the next two)
CHARACTERS_PER_TOKEN = 4.0  # Llama's tokenizer on English prose
CHAT_TEMPLATE_TOKENS = 17  # <s>, <|user|>, <|assistant|>, two </s> and the newlines of TinyLlama's chat template


def alpaca_mean_tokens() -> float:
    """The mean row length under TinyLlama's chat template, from Alpaca's published size (the docstring's steps)."""
    template = (1 - ALPACA_WITH_INPUT) * len(ALPACA_TEMPLATES[0]) + ALPACA_WITH_INPUT * len(ALPACA_TEMPLATES[1])
    offsets = 4 * 4  # an int32 offset per string column
    text = (ALPACA_COPY_BYTES / ALPACA_COPY_ROWS - offsets - template) / 2  # the fields, and again in the text
    return text / CHARACTERS_PER_TOKEN + CHAT_TEMPLATE_TOKENS


ALPACA_MEAN_TOKENS = round(alpaca_mean_tokens(), -1)  # 110
ALPACA_SIGMA = 0.6
TINYLLAMA_CONTEXT = 2048
GIB_PER_UNSLOTH_GB = 1.0  # Unsloth's notebooks print max_memory_reserved() / 1024**3 and call it GB: GiB


def alpaca_lengths(rows: int, seed: int = 0, mean: float = ALPACA_MEAN_TOKENS, sigma: float = ALPACA_SIGMA) -> list[int]:
    """``rows`` token lengths shaped like Alpaca's under TinyLlama's chat template (an assumption: the docstring)."""
    rng = random.Random(seed)
    mu = math.log(mean) - sigma ** 2 / 2  # a log-normal's mean is exp(mu + sigma^2 / 2)
    return [min(TINYLLAMA_CONTEXT, max(8, round(rng.lognormvariate(mu, sigma)))) for _ in range(rows)]


@dataclass(frozen=True)
class MeasuredRun:
    """One published T4 run: what was measured, the knobs ``ftlab.plan`` is given for it, and the assumptions."""

    name: str
    measured_s: float
    epochs: float
    knobs: dict  # ftlab.plan's arguments, lengths included
    assumptions: str
    measured_peak_gib: float | None = None
    source: str = ""


def _seed003(number: int, epochs: int, batch: int, accumulation: int, seconds: float) -> MeasuredRun:
    knobs = dict(lora_r=8, target_modules=("q_proj", "v_proj"), lora_dropout=0.1, batch_size=batch,
                 gradient_accumulation_steps=accumulation, max_length=512, gradient_checkpointing=True,
                 lengths=alpaca_lengths(2_600), padding="pad")
    return MeasuredRun(f"seed 003 round {number}: LoRA r 8 q,v, {batch} x {accumulation}, {epochs} epochs", seconds,
                       epochs, knobs, "Alpaca's first 2,600 rows at ~110 tokens (log-normal, sigma 0.6) under "
                       "TinyLlama's chat template, each micro-batch padded to its longest row, max_length 512 (the "
                       "report does not say; ftlab's seed003-round1 preset keeps 512), the output layer on every position (a plain "
                       "Trainer), seed 003's own wall time", source="shared/seeds/003")


SEED003 = (_seed003(1, 3, 4, 8, 7 * 60 + 1), _seed003(2, 4, 8, 4, 8 * 60 + 54), _seed003(3, 5, 8, 4, 11 * 60 + 23),
           _seed003(4, 3, 8, 4, 6 * 60 + 39), _seed003(5, 3, 8, 4, 6 * 60 + 45))
UNSLOTH = MeasuredRun(
    "Unsloth TinyLlama: QLoRA r 32 all linear, 2 x 4, 4,096 packed", 5_034.6, 1,
    dict(quantization="4bit", lora_r=32, target_modules=ALL_LINEAR, lora_dropout=0.0, batch_size=2,
         gradient_accumulation_steps=4, max_length=4096, gradient_checkpointing=False, lengths=[4096] * 3_000,
         padding="pack", optim="adamw_8bit"),
    "3,000 rows of 4,096 packed tokens, every token attending to the whole packed row (no block-diagonal mask), "
    "adamw_8bit; Unsloth's own kernels, where the plan models transformers' stock path",
    measured_peak_gib=13.5 * GIB_PER_UNSLOTH_GB, source="Unsloth's TinyLlama Colab notebook")
RUNS = (*SEED003, UNSLOTH)
NOT_FOUND = ("fitcheck-llm: its README reports ten T4 runs of peak memory only and calls itself a sizing tool, "
             "not a throughput benchmark; no published TinyLlama step time on a T4 was found")


@dataclass
class Comparison:
    """``ftlab.plan``'s time (and peak) for each measured run, and the error of each."""

    rows: list[dict] = field(default_factory=list)

    def __repr__(self) -> str:
        lines = [f"{'run':<62} {'measured':>9} {'planned':>9} {'error':>7}   peak GiB: plan / measured"]
        for r in self.rows:
            peak = f"{r['planned_peak_gib']:.1f} / {r['measured_peak_gib']:.1f}" if r["measured_peak_gib"] else \
                f"{r['planned_peak_gib']:.1f} / -"
            lines.append(f"{r['run']:<62} {_minutes(r['measured_s']):>9} {_minutes(r['planned_s']):>9} "
                         f"{r['error']:>+7.0%}   {peak}")
        lines += ["", *(f"{r['run'].split(':')[0]}: {r['assumptions']}" for r in self.rows[-2:]), f"{NOT_FOUND}."]
        return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{round(seconds % 60):02d}s"


def compare(gpu="T4", runs=RUNS) -> Comparison:
    """Plan every measured run on ``gpu`` and put its time beside the measured one (error = planned / measured - 1)."""
    rows = []
    for run in runs:
        planned = plan(gpu=gpu, **run.knobs)
        seconds = planned.epoch_s * run.epochs
        rows.append({"run": run.name, "measured_s": run.measured_s, "planned_s": seconds,
                     "error": seconds / run.measured_s - 1, "planned_peak_gib": planned.peak_gib,
                     "measured_peak_gib": run.measured_peak_gib, "assumptions": run.assumptions})
    return Comparison(rows)
