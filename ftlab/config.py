"""RoundConfig: every knob of one fine-tuning round, with help, checks and named presets.

One round = one set of knobs the seeds' learners tuned by hand (learning rate, epochs, batch size,
gradient accumulation, LoRA rank / alpha / dropout / targets, max length, warmup, ...). A
``RoundConfig`` prints as a readable table, refuses impossible values with a message naming the
field, the value and what is allowed, and builds the two objects the libraries want: TRL's
``SFTConfig`` (with fp16 and bf16 always passed explicitly) and PEFT's ``LoraConfig``.

The named, tested presets a round starts from are at the end (``PRESETS``), with why the CPU ones differ
from the T4's. ``PRESETS`` is read-only (a preset's value changed in place would change every later round
and skip ``RoundConfig``'s checks); ``RoundConfig.preset(name, **overrides)`` builds a checked config from
one, ``differences`` prints the knobs in which two presets differ with the reasons kept here, and
``preset_for`` says which preset suits a model on this machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType

from ftlab.machine import SMALL_MODEL_PARAMS

# The layers LoRA adapts. Tuples, not lists: a value edited in place would change every later preset and skip validation.
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = (*ATTENTION, "gate_proj", "up_proj", "down_proj")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd",
              "paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit")
LOSS_ON = ("answers", "everything")
REPORT_TO = ("none", "tensorboard", "wandb", "trackio")


class ConfigError(ValueError):
    """A knob has a value that cannot work; the message names the field, the value and the choices."""


def knob(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help}, **kwargs)


class _CheckedOnEverySet:
    """For a config dataclass: ``validate()`` after construction and after every later assignment, so that a wrong
    value fails in the notebook cell that sets it (the old value kept), not minutes later in the trainer."""

    def __post_init__(self):
        self.validate()
        object.__setattr__(self, "_ready", True)

    def _normalized(self, name: str, value):
        """The value as the config keeps it (a hook: RoundConfig keeps a list of layer names as a tuple)."""
        return value

    def __setattr__(self, name, value):
        value = self._normalized(name, value)
        if getattr(self, "_ready", False) and name in self.__dataclass_fields__:
            previous = self.__dict__[name]
            object.__setattr__(self, name, value)
            try:
                self.validate()
            except ConfigError:
                object.__setattr__(self, name, previous)
                raise
        else:
            object.__setattr__(self, name, value)


@dataclass
class RoundConfig(_CheckedOnEverySet):
    """The knobs of one round. ``RoundConfig.preset("t4-lora")`` starts from a tested set."""

    # optimisation
    learning_rate: float = knob(2e-4, "Step size. LoRA wants ~1e-4..5e-4 (TRL's 2e-5 default learns little).")
    num_train_epochs: float = knob(1.0, "Passes over the training set (ignored when max_steps > 0).")
    max_steps: int = knob(-1, "Stop after this many optimiser steps; -1 means use num_train_epochs.")
    batch_size: int = knob(4, "Rows per forward pass on the GPU (per_device_train_batch_size).")
    gradient_accumulation_steps: int = knob(4, "Forward passes per optimiser step: effective batch = batch_size x this.")
    warmup: float = knob(0.03, "Warm-up: a fraction of all steps if < 1, else a number of steps.")
    lr_scheduler_type: str = knob("cosine", "How the learning rate decays after warm-up (cosine, linear, constant, ...).")
    weight_decay: float = knob(0.0, "L2-style decay on trainable weights.")
    max_grad_norm: float = knob(1.0, "Clip gradients to this norm (QLoRA used 0.3).")
    optim: str = knob("adamw_torch", "Optimiser: adamw_torch, or paged_adamw_8bit for QLoRA (paged/8-bit need a GPU).")
    seed: int = knob(42, "Seed for data order and LoRA initialisation: same seed, same round.")
    # LoRA
    lora_r: int = knob(16, "LoRA rank: size of the low-rank update (8-64 are common).")
    lora_alpha: int = knob(32, "LoRA scale: the update is multiplied by alpha / r.")
    lora_dropout: float = knob(0.05, "Dropout on the LoRA path, a regulariser (0 to 0.1).")
    target_modules: tuple[str, ...] = knob(ATTENTION, "Layers that get LoRA adapters: attention (q,k,v,o_proj) or "
                                                      "all linear ones. A list given is kept as a tuple.")
    # data and memory
    max_length: int = knob(512, "Longest row in tokens; longer rows are truncated.")
    packing: bool = knob(False, "Pack several short rows into one sequence (faster, no padding).")
    padding_free: bool = knob(False, "Lay a micro-batch's rows end to end, no pad tokens; position ids keep "
                                     "each row's attention to itself (without FlashAttention-2, e.g. on a T4, "
                                     "attention still spans the whole micro-batch: keep it to a few rows).")
    group_by_length: bool = knob(False, "Batch rows of similar length together, so little padding is needed.")
    loss_on: str = knob("answers", "Which tokens carry loss: 'answers' (prompts masked) or 'everything'.")
    gradient_checkpointing: bool = knob(True, "Recompute activations in the backward pass: less memory, ~30% slower.")
    quantization: str | None = knob(None, "How the base model is loaded: None (fp16/bf16), '4bit' (QLoRA) or '8bit'.")
    precision: str = knob("auto", "'auto' picks bf16 on Ampere+, fp16 on a T4, fp32 on a CPU; or fp16 / bf16 / fp32 "
                                  "(where this machine lacks it, 'auto''s choice runs, recorded as a substitution).")
    # bookkeeping
    logging_steps: int = knob(10, "Log loss, learning rate and grad norm every this many steps.")
    eval_steps: int | None = knob(None, "Evaluate every this many steps; None evaluates once per epoch.")
    save_steps: int | None = knob(None, "Save a checkpoint every this many steps; None saves only at the end.")
    report_to: str = knob("none", "Tracker: 'none', 'tensorboard', 'wandb' or 'trackio'. Never prompts for a login.")

    def _normalized(self, name: str, value):
        return _layer_names(value) if name == "target_modules" else value

    # ----------------------------------------------------------------- presets and printing
    @classmethod
    def preset(cls, name: str, **overrides) -> RoundConfig:
        """A named, tested set of knobs; keyword arguments override single knobs."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name]["knobs"], **overrides})

    def __repr__(self) -> str:
        rows = [f"{f.name:<28} {self.__dict__[f.name]!r:<26} {f.metadata['help']}" for f in dataclasses.fields(self)]
        return "RoundConfig\n" + "\n".join(f"  {r}" for r in rows)

    def to_dict(self) -> dict:
        """The knobs as plain JSON values (layer names as a list), as a lab record stores them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def diff(self, other: RoundConfig) -> dict:
        """Knobs whose values differ: ``{name: (mine, theirs)}``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps

    @property
    def lora_scale(self) -> float:
        """alpha / r, what LoRA multiplies its update by: with Adam each step moves the weights about in
        proportion to learning_rate x alpha / r, so the two knobs act together (``lora_scale_note``)."""
        return self.lora_alpha / self.lora_r

    # ----------------------------------------------------------------- checks
    def validate(self) -> RoundConfig:
        def bad(name, why):
            value = getattr(self, name)
            shown = list(value) if isinstance(value, tuple) else value  # as the learner typed it
            raise ConfigError(f"RoundConfig.{name} = {shown!r}: {why}")

        if not isinstance(self.learning_rate, int | float) or not 0 < self.learning_rate < 1:
            bad("learning_rate", "must be a number between 0 and 1 (LoRA: ~1e-4..5e-4)")
        for name in ("batch_size", "gradient_accumulation_steps", "lora_r", "lora_alpha", "max_length",
                     "logging_steps"):
            if not _whole(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "must be a whole number >= 1")
        if _number(self.max_steps) and self.max_steps > MOST_STEPS:
            bad("max_steps", f"is more than {MOST_STEPS:,} steps, which no round gets near in a free GPU session (12 hours "
                             "at most); give the steps you mean, or max_steps=-1 and num_train_epochs")
        for name in ("max_steps", "seed"):
            if not _whole(getattr(self, name)):
                value = getattr(self, name)
                spelled = (f" (write it as digits, {int(value)}: 1e3 or 1000.0 is read as a decimal number)"
                           if isinstance(value, float) and value.is_integer() else "")
                bad(name, f"must be a whole number{spelled}")
        for name in ("packing", "padding_free", "group_by_length", "gradient_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be True or False")
        for name in ("num_train_epochs", "warmup", "weight_decay", "max_grad_norm", "lora_dropout"):
            if not _number(getattr(self, name)):
                bad(name, "must be a number")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0 (0 turns it off)")
        if not self.max_grad_norm > 0:
            bad("max_grad_norm", "must be > 0 (1.0 is usual; QLoRA used 0.3)")
        if self.max_steps == 0 or self.max_steps < -1:
            bad("max_steps", "must be -1 (use epochs) or a number of steps >= 1")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            bad("num_train_epochs", "must be > 0 when max_steps is -1")
        if not 0 <= self.lora_dropout < 1:
            bad("lora_dropout", "must be in [0, 1)")
        if self.warmup < 0:
            bad("warmup", "must be >= 0 (a fraction < 1, or a number of steps)")
        for name, choices in (("lr_scheduler_type", SCHEDULERS), ("optim", OPTIMIZERS), ("precision", PRECISIONS),
                              ("loss_on", LOSS_ON), ("quantization", (None, "4bit", "8bit")),
                              ("report_to", REPORT_TO)):
            if getattr(self, name) not in choices:
                bad(name, f"choose one of {choices}")
        if (not isinstance(self.target_modules, tuple) or not self.target_modules
                or not all(isinstance(m, str) and m for m in self.target_modules)):
            bad("target_modules", f"must be a non-empty list of layer names, e.g. {list(ATTENTION)}")
        for name in ("eval_steps", "save_steps"):
            if getattr(self, name) is not None and (not _whole(getattr(self, name)) or getattr(self, name) < 1):
                bad(name, "must be None or a number of steps >= 1")
        return self

    def check_model(self, model) -> None:
        """Every target module must exist in ``model``; say which ones do when one does not."""
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [m for m in self.target_modules if m not in present and m != "all-linear"]
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, mod in model.named_modules()
                             if type(mod).__name__.startswith("Linear") and "lm_head" not in n})
            raise ConfigError(f"RoundConfig.target_modules = {self.target_modules!r}: the model has no layer "
                              f"named {missing}. Layers you can target: {linear}")

    def resolve_precision(self, env_precision: str, gpu_name: str | None = None) -> tuple[str, str | None]:
        """The precision that will train here, and why it differs from ``precision`` (None if it does not).

        'auto' takes the machine's choice. A precision this machine cannot run is replaced by that choice
        (the same update, computed as this machine can), as a paged optimiser is on a CPU (``optimizer``):
        the round runs, and the substitution is printed, recorded and shown in the lab's table.
        """
        if self.precision == "auto":
            return env_precision, None
        if self.precision == "bf16" and env_precision != "bf16":
            where = gpu_name or "this CPU"
            return env_precision, (f"{where} has no native bf16 (it needs compute capability 8.0+; a T4 is 7.5): "
                                   f"the round trains in {env_precision}, what precision='auto' picks here")
        if self.precision == "fp16" and env_precision == "fp32":
            return "fp32", ("fp16 mixed precision needs a GPU: on this CPU the round trains in fp32, the same "
                            "update computed more exactly (FTLAB_REHEARSE=T4 runs the T4's fp16 path on the CPU)")
        return self.precision, None

    # ----------------------------------------------------------------- what the libraries receive
    def optimizer(self, on_gpu: bool) -> tuple[str, str | None]:
        """The optimiser that will actually run here, and why it differs from ``optim`` (None if it does not).
        ``on_gpu``: the GPU's code path runs (on a GPU, or a T4 rehearsed on the CPU, where bitsandbytes' CPU
        backend runs the paged and 8-bit optimisers)."""
        if on_gpu or not (self.optim.startswith("paged") or "8bit" in self.optim):
            return self.optim, None
        return "adamw_torch", (f"{self.optim} needs a CUDA GPU (bitsandbytes pages and quantises optimiser state "
                               "on the GPU); on this CPU the round uses adamw_torch, the same update in full "
                               "precision")

    def lora_config(self):
        """PEFT's ``LoraConfig`` for these knobs."""
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), bias="none", task_type="CAUSAL_LM")

    def sft_config(self, output_dir: str, precision: str, has_eval: bool, conversational: bool = True,
                   on_gpu: bool = False, optim: str | None = None):
        """TRL's ``SFTConfig``: fp16 and bf16 both explicit (TRL turns bf16 on when left None). ``optim``: the
        optimiser that runs (``WhatRuns.optimizer``); by default the one ``optimizer(on_gpu)`` picks."""
        from trl import SFTConfig

        eval_strategy = ("steps" if self.eval_steps else "epoch") if has_eval else "no"
        optim = optim or self.optimizer(on_gpu)[0]
        return SFTConfig(
            output_dir=output_dir,
            learning_rate=self.learning_rate, num_train_epochs=self.num_train_epochs, max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size, per_device_eval_batch_size=EVAL_BATCH_SIZE,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            warmup_steps=self.warmup, lr_scheduler_type=self.lr_scheduler_type, weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm, optim=optim, seed=self.seed, data_seed=self.seed,
            fp16=precision == "fp16", bf16=precision == "bf16", use_cpu=not on_gpu,
            activation_checkpointing=self.gradient_checkpointing,
            activation_checkpointing_kwargs={"use_reentrant": False},
            # padding-free without packing: TRL enforces no max_length, ftlab truncates the rows itself
            max_length=None if self.padding_free and not self.packing else self.max_length, packing=self.packing,
            padding_free=self.padding_free,
            train_sampling_strategy="group_by_length" if self.group_by_length else "random",
            assistant_only_loss=conversational and self.loss_on == "answers",
            completion_only_loss=None if conversational else self.loss_on == "answers",
            logging_steps=self.logging_steps, logging_first_step=True,
            eval_strategy=eval_strategy, eval_steps=self.eval_steps,
            save_strategy="steps" if self.save_steps else "no", save_steps=self.save_steps or 500,
            save_total_limit=2, report_to=self.report_to, disable_tqdm=False,
            # each log line then says how many input tokens (padding excluded) the round has seen: rounds with
            # different batch sizes or lengths compare by tokens, not steps (ftlab.lab.answers_and_curves)
            include_num_input_tokens_seen="non_padding",
        )


MOST_STEPS = 10**7  # a max_steps above this is a typo (1e12), not a plan


def _layer_names(value):
    """Layer names as a tuple: one name, a list or a tuple all become a tuple (other values left to validate)."""
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list | tuple) else value


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def differences(name: str = "cpu-tiny", reference: str = "t4-lora") -> str:
    """The knobs in which preset ``name`` differs from ``reference``, each with the reason (printed and returned)."""
    mine, theirs = RoundConfig.preset(name), RoundConfig.preset(reference)
    reasons = DIFFERS.get((name, reference), {})
    if name == reference:
        print(text := f"{name}: the preset itself, no differences")
        return text
    lines = [f"{name} differs from {reference} in:"]
    differing = mine.diff(theirs)
    width = max(map(len, differing), default=0)
    for knob, (value, other) in differing.items():
        lines.append(f"  {knob:<{width}} {value!r:<12} ({reference}: {other!r})  {reasons.get(knob, '')}".rstrip())
    text = "\n".join(lines)
    print(text)
    return text


# The trainer's eval loss is a mean of batch means: with the eval batch tied to the training batch, the same
# untrained model on the same rows measured differently at batch 1 and batch 2 (SmolLM2 on seed 003's rounds), by
# more than the rounds' training moved it. One eval batch for every round keeps eval losses comparable across
# batch sizes (tests/test_lab_quiet.py).
EVAL_BATCH_SIZE = 8


# ------------------------------------------------------------------------------------------ presets


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


def preset_for(model, has_gpu: bool) -> str:
    """The preset for ``model`` (a loaded model, or a name as ``ftlab.load_model`` takes) on a machine with or without a GPU.

    ``"cpu-tiny"`` for ftlab's tiny model (or any model under ``SMALL_MODEL_PARAMS``), wherever it runs;
    ``"cpu-small"`` for any other model without a GPU (the T4's knobs, an epoch at 1024 tokens, are a GPU's);
    ``"t4-lora"`` on a GPU. ``differences(preset)`` prints why each knob differs from the T4's.
    """
    tiny = model.num_parameters() < SMALL_MODEL_PARAMS if hasattr(model, "num_parameters") else str(model) == "tiny"
    if tiny:
        return "cpu-tiny"
    return "t4-lora" if has_gpu else "cpu-small"


PRESET_LORA_SCALE = 2.0  # alpha / r of every T4 and CPU preset (32 / 16): the scale their learning rates suit
FAR_SCALE = 4  # alpha / r more than this many times off the presets' makes their learning rates act far off


def lora_scale_note(config) -> str:
    """The learning rate read with LoRA's scale: what rate at the presets' alpha / r moves the weights as much.

    Seed 002's r 64 / alpha 16 (0.25, 8 times below the presets' 2) at the preset's rate learned 3 of 24
    answers, and 5 times that rate 19 of 24; seed 004's lr 1.5e-3 at r 32 / alpha 128 (4) collapsed.
    """
    scale, lr = config.lora_scale, config.learning_rate
    head = f"LoRA multiplies its update by alpha / r = {config.lora_alpha} / {config.lora_r} = {scale:g}"
    if scale == PRESET_LORA_SCALE:
        return f"{head}, the presets' own scale: learning_rate x alpha / r is what moves the weights"
    return (f"{head}, so learning_rate {lr:g} moves the weights about as {lr * scale / PRESET_LORA_SCALE:.2g} does "
            f"at the presets' alpha / r = {PRESET_LORA_SCALE:g}; the two knobs act together")


def lora_scale_hint(config) -> str | None:
    """A note before training when alpha / r is more than ``FAR_SCALE`` times off the presets' (None otherwise)."""
    factor = config.lora_scale / PRESET_LORA_SCALE
    if 1 / FAR_SCALE <= factor <= FAR_SCALE:
        return None
    fix = (f"raise learning_rate about {1 / factor:.2g}x, or lora_alpha to {int(PRESET_LORA_SCALE * config.lora_r)}"
           if factor < 1 else
           f"lower learning_rate about {factor:.2g}x, or lora_alpha to {int(PRESET_LORA_SCALE * config.lora_r)}")
    return f"Note: {lora_scale_note(config)}. If the presets' learning rates are your guide, {fix}."


def small_model_hint(config, model) -> str | None:
    """A note when a small model gets a learning rate below the tiny model's preset (TinyLlama's, usually)."""
    params = sum(p.numel() for p in model.parameters())
    tiny_rate = RoundConfig.preset("cpu-tiny").learning_rate
    if params < SMALL_MODEL_PARAMS and config.learning_rate < tiny_rate:
        return (f"Note: learning_rate {config.learning_rate:g} is slow for a model this small ({params / 1e6:.1f}M "
                f"parameters): RoundConfig.preset('cpu-tiny') (learning_rate {tiny_rate:g}) gets further in the "
                "same steps, and env.default_preset picks it on a CPU.")
    return None


# ------------------------------------------------------------------------------------------- preference rounds
LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")  # TRL's DPOConfig.loss_type values the course explains
# The knobs a preference round shares with an SFT round: their rules live in RoundConfig.validate, once.
SHARED_KNOBS = ("learning_rate", "num_train_epochs", "max_steps", "batch_size", "gradient_accumulation_steps",
                "warmup", "lr_scheduler_type", "max_length", "seed", "precision", "logging_steps", "eval_steps")


@dataclass
class PreferenceConfig(_CheckedOnEverySet):
    """The knobs of one preference round (DPO and its kin, through TRL's ``DPOTrainer``) on an SFT round's adapter.

    The LoRA knobs are the SFT round's (the adapter trains on from where it stopped); these are the ones a
    preference round adds (``beta``, ``loss_type``, the guard's limits) or sets differently (a smaller step:
    preference rounds move a model that already answers). ``PreferenceConfig.preset("cpu-small")`` starts from
    the knobs tested for that SFT preset's model.
    """

    beta: float = knob(0.1, "How far the policy may move from the reference: the reward is beta x log(policy / "
                            "reference). Small beta (0.01-0.1) lets the model move further; large beta holds it "
                            "close to the SFT round.")
    loss_type: str = knob("sigmoid", "'sigmoid': DPO, -log sigmoid(beta x margin); 'ipo': a squared loss that "
                                     "stops pushing at a set margin; 'hinge': SLiC; 'robust': DPO for noisy labels.")
    learning_rate: float = knob(5e-5, "Step size: 5-10x below the SFT round's, as the model already answers "
                                      "(TRL's default is 1e-6, for full fine-tuning).")
    num_train_epochs: float = knob(1.0, "Passes over the pairs (ignored when max_steps > 0).")
    max_steps: int = knob(-1, "Stop after this many optimiser steps; -1 means use num_train_epochs.")
    batch_size: int = knob(4, "Pairs per forward pass; each pair is two sequences (chosen and rejected), and each "
                              "is also run through the reference.")
    gradient_accumulation_steps: int = knob(1, "Forward passes per optimiser step.")
    warmup: float = knob(0.1, "Warm-up: a fraction of all steps if < 1, else a number of steps.")
    lr_scheduler_type: str = knob("linear", "How the learning rate decays after warm-up.")
    max_length: int = knob(256, "Longest prompt + answer in tokens; longer ones are cut from the end.")
    seed: int = knob(42, "Seed for the order of the pairs: same seed, same round.")
    precision: str = knob("auto", "As RoundConfig.precision: 'auto' picks bf16 on Ampere+, fp16 on a T4, fp32 "
                                  "on a CPU.")
    logging_steps: int = knob(5, "Log loss, rewards and log-probabilities every this many steps.")
    eval_steps: int | None = knob(None, "Evaluate on the held-out pairs every this many steps; None: at the end.")
    collapse_nats: float = knob(30.0, "The guard stops the round when the chosen answers' mean log-probability "
                                      "falls this many nats below its first logged value: DPO can raise the margin "
                                      "by making both answers unlikely, and then the model stops writing either.")
    margin_limit: float = knob(25.0, "The guard stops the round when the mean reward margin (beta x log-ratio gap) "
                                     "passes this: sigmoid(margin) is then 1 to the computer's precision, and the "
                                     "policy has run far from the reference.")

    @classmethod
    def preset(cls, name: str, **overrides) -> PreferenceConfig:
        """The preference knobs tested after the SFT preset ``name`` (``cpu-tiny``, ``cpu-small``, ``t4-lora``, ...)."""
        if name not in PREFERENCE_PRESETS:
            raise ConfigError(f"no preference preset for {name!r}; choose one of {sorted(PREFERENCE_PRESETS)}")
        return cls(**{**PREFERENCE_PRESETS[name], **overrides})

    def __repr__(self) -> str:
        rows = [f"{f.name:<28} {self.__dict__[f.name]!r:<12} {f.metadata['help']}" for f in dataclasses.fields(self)]
        return "PreferenceConfig\n" + "\n".join(f"  {r}" for r in rows)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> PreferenceConfig:
        def bad(name, why):
            raise ConfigError(f"PreferenceConfig.{name} = {getattr(self, name)!r}: {why}")

        if isinstance(self.beta, bool) or not _number(self.beta) or not 0 < self.beta <= 10:
            bad("beta", "must be a number in (0, 10]; 0.1 is usual, 0.01-0.5 the range people use")
        if self.loss_type not in LOSS_TYPES:
            bad("loss_type", f"choose one of {LOSS_TYPES}")
        for name in ("collapse_nats", "margin_limit"):
            if isinstance(getattr(self, name), bool) or not _number(getattr(self, name)) or not getattr(self, name) > 0:
                bad(name, "must be a number > 0")
        try:  # the knobs an SFT round has too: RoundConfig's rules, in one place
            RoundConfig(**{k: getattr(self, k) for k in SHARED_KNOBS})
        except ConfigError as error:
            raise ConfigError(str(error).replace("RoundConfig.", "PreferenceConfig.", 1)) from None
        return self

    def round_config(self, parent: RoundConfig) -> RoundConfig:
        """The SFT round's knobs with this round's training knobs: what the lab records and the table compares
        (the adapter's rank, alpha and layers are the parent's, as the adapter is)."""
        return dataclasses.replace(parent, **{k: getattr(self, k) for k in SHARED_KNOBS}, save_steps=None,
                                   loss_on="answers")

    def dpo_config(self, output_dir: str, precision: str, has_eval: bool, on_gpu: bool, optim: str,
                   gradient_checkpointing: bool = False):
        """TRL's ``DPOConfig``: fp16 and bf16 both explicit, as ``RoundConfig.sft_config``."""
        from trl import DPOConfig

        return DPOConfig(
            output_dir=output_dir, beta=self.beta, loss_type=[self.loss_type],
            learning_rate=self.learning_rate, num_train_epochs=self.num_train_epochs, max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size, per_device_eval_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps, warmup_steps=self.warmup,
            lr_scheduler_type=self.lr_scheduler_type, optim=optim, seed=self.seed, data_seed=self.seed,
            fp16=precision == "fp16", bf16=precision == "bf16", use_cpu=not on_gpu, max_length=self.max_length,
            activation_checkpointing=gradient_checkpointing, activation_checkpointing_kwargs={"use_reentrant": False},
            logging_steps=self.logging_steps, logging_first_step=True,
            eval_strategy=("steps" if self.eval_steps else "epoch") if has_eval else "no", eval_steps=self.eval_steps,
            save_strategy="no", report_to="none", disable_tqdm=False)


# Preference knobs per SFT preset. cpu-small's and cpu-tiny's were tried on the course's pairs (chapter 08);
# t4-lora's follow TRL's DPO examples with LoRA (beta 0.1, lr 5e-5..5e-6) and have not been run on a T4 yet.
PREFERENCE_PRESETS = MappingProxyType({
    "t4-lora": MappingProxyType(dict(beta=0.1, learning_rate=5e-5, num_train_epochs=1, batch_size=4,
                                     gradient_accumulation_steps=4, max_length=1024)),
    "t4-qlora": MappingProxyType(dict(beta=0.1, learning_rate=5e-5, num_train_epochs=1, batch_size=2,
                                      gradient_accumulation_steps=8, max_length=1024)),
    "cpu-tiny": MappingProxyType(dict(beta=0.1, learning_rate=1e-4, max_steps=40, batch_size=8,
                                      max_length=128, logging_steps=5)),
    "cpu-small": MappingProxyType(dict(beta=0.1, learning_rate=1e-4, max_steps=30, batch_size=4,
                                       max_length=128, logging_steps=5)),
})
