"""The named, tested sets of knobs a ``RoundConfig`` starts from, and why the CPU ones differ from the T4's.

``PRESETS`` is read-only (a preset's value changed in place would change every later round and skip
``RoundConfig``'s checks); ``RoundConfig.preset(name, **overrides)`` builds a checked config from one,
and ``ftlab.config.differences`` prints the knobs in which two presets differ, with the reasons kept here.
"""

from __future__ import annotations

from types import MappingProxyType

DEFAULT_MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"  # what the t4 presets were tuned for

# Tuples, not lists: a preset's value edited in place would change every later preset and skip validation.
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = (*ATTENTION, "gate_proj", "up_proj", "down_proj")


def _frozen(presets: dict) -> MappingProxyType:
    """Read-only presets: ``PRESETS[name]["knobs"][knob] = ...`` raises instead of changing later rounds."""
    return MappingProxyType({name: MappingProxyType({"about": p["about"], "knobs": MappingProxyType(p["knobs"])})
                             for name, p in presets.items()})


PRESETS = _frozen({
    "t4-lora": {"about": "TinyLlama-1.1B-Chat in fp16 on a T4 (Colab/Kaggle), LoRA on attention.",
                "knobs": dict(learning_rate=2e-4, num_train_epochs=1, batch_size=8, gradient_accumulation_steps=2,
                              lora_r=16, lora_alpha=32, lora_dropout=0.05, target_modules=ATTENTION,
                              max_length=1024, save_steps=100)},
    "t4-qlora": {"about": "QLoRA: 4-bit NF4 base on a T4, LoRA on all linear layers, paged 8-bit AdamW.",
                 "knobs": dict(learning_rate=2e-4, num_train_epochs=1, batch_size=4, gradient_accumulation_steps=4,
                               lora_r=16, lora_alpha=32, lora_dropout=0.05, target_modules=ALL_LINEAR,
                               max_length=1024, quantization="4bit", optim="paged_adamw_8bit",
                               max_grad_norm=0.3, save_steps=100)},
    "cpu-tiny": {"about": "ftlab's tiny model on a CPU: t4-lora's knobs, short enough to run in seconds.",
                 "knobs": dict(learning_rate=1e-3, max_steps=120, batch_size=16, gradient_accumulation_steps=1,
                               lora_r=16, lora_alpha=32, lora_dropout=0.05, target_modules=ATTENTION,
                               max_length=256, gradient_checkpointing=False, logging_steps=10, eval_steps=20)},
    "cpu-small": {"about": "A small real model (e.g. SmolLM2-135M) on a CPU: t4-lora's adapter, minutes at short length.",
                  "knobs": dict(learning_rate=5e-4, max_steps=60, batch_size=4, gradient_accumulation_steps=1,
                                lora_r=16, lora_alpha=32, lora_dropout=0.0, target_modules=ATTENTION,
                                max_length=128, gradient_checkpointing=False, logging_steps=10, eval_steps=20)},
    "seed003-round1": {"about": "Seed 003's first round: TinyLlama-Chat, Alpaca 2,600 rows, T4, fp16.",
                       "knobs": dict(learning_rate=2e-4, num_train_epochs=3, batch_size=4,
                                     gradient_accumulation_steps=8, warmup=100, lr_scheduler_type="linear",
                                     lora_r=8, lora_alpha=32, lora_dropout=0.1, target_modules=("q_proj", "v_proj"),
                                     max_length=512, logging_steps=50, weight_decay=0.0)},
})


# Why the CPU preset differs from the T4 one where it does; printed by differences("cpu-tiny")
CPU_TINY_DIFFERS = {
    "learning_rate": "120 steps instead of an epoch of thousands: a larger step learns the task in the time",
    "max_steps": "a fixed 120 steps, seconds on a CPU (the T4 round runs one epoch)",
    "max_length": "the tiny model's context is 256 tokens (TinyLlama's is 2048); the course's rows are far shorter",
    "batch_size": "16 rows in one pass, the T4's 8 x 2 rows per update: accumulating saves GPU memory, and a CPU has "
                  "memory to spare for the tiny model, while each extra pass costs time",
    "gradient_accumulation_steps": "one pass per update: the same 16 rows per update as the T4's, the same gradient",
    "gradient_checkpointing": "a CPU has memory to spare for the tiny model: recomputing would only cost time",
    "eval_steps": "evaluate every 20 steps to draw a curve (the T4 round evaluates once per epoch)",
    "save_steps": "no checkpoints in a round of seconds",
}


# Why the preset for a small real model on a CPU differs from the T4 one; printed by differences("cpu-small")
CPU_SMALL_DIFFERS = {
    "learning_rate": "60 steps instead of an epoch of thousands: a larger step than the T4's, so few steps move the model",
    "max_steps": "a fixed 60 steps, so that a CPU round ends in minutes (the T4 round runs one epoch)",
    "batch_size": "4 rows a step: on a CPU a step's time grows with the tokens in it",
    "lora_dropout": "no LoRA dropout: on a CPU each adapted layer drawing a random mask over its input costs a few "
                    "percent of every step (benchmarks/bench_cpu_knobs.py), and 60 steps leave little to regularise",
    "gradient_accumulation_steps": "one update per batch: more updates in the minutes a CPU round has",
    "max_length": "128 tokens: the course's rows are far shorter, and a CPU's time grows with length",
    "gradient_checkpointing": "a CPU has memory to spare for a small model: recomputing would only cost time",
    "eval_steps": "evaluate every 20 steps to draw a curve (the T4 round evaluates once per epoch)",
    "save_steps": "no checkpoints in a round of minutes",
}
DIFFERS = {("cpu-tiny", "t4-lora"): CPU_TINY_DIFFERS, ("cpu-small", "t4-lora"): CPU_SMALL_DIFFERS}


def presets() -> str:
    """The presets, one line each."""
    return "\n".join(f"{name:<16} {p['about']}" for name, p in PRESETS.items())
