"""Before loading anything: will this round fit on the GPU, and how long will an epoch take?

``ftlab.plan(...)`` adds up the peak GPU memory of a LoRA / QLoRA round term by term, each with the
formula that gave it, and says whether it fits and by how much:

=====================  ==============================================================================
CUDA context           CUDA + cuBLAS workspace, outside PyTorch's allocator (an estimate)
weights                fp16: 2 bytes a parameter. NF4: 4 bits a weight in the decoder's linear layers,
                       plus per block of 64 an absmax (fp32, or 8-bit with double quantization);
                       embeddings, norms and lm_head stay unquantized, in fp32 once PEFT's
                       ``prepare_model_for_kbit_training`` has run (ftlab runs it for 4-bit models)
LoRA                   parameters, gradients (fp32) and optimizer state (AdamW: two fp32 moments)
activations            what autograd keeps for the backward pass (counted per token and layer below);
                       with gradient checkpointing only each layer's input, plus one layer recomputed
logits and loss        TRL 1.x's fused LM head scores chunks of 4096 tokens x 32768 vocab entries and
                       never builds the full fp32 logits; older TRL did (read from the installed TRL)
allocator slack        reserved minus allocated memory (an estimate, a share of activations and loss)
=====================  ==============================================================================

A preference round (``preference=True``, chapter 08) runs each pair's chosen and rejected answers in one batch
(twice the tokens of ``batch_size`` rows), and a reference forward pass on them: with LoRA the reference is the
same base weights with the SFT adapter's frozen copy switched in (TRL's "ref" adapter), so the plan adds that
copy's fp32 weights and the pass's transient (one layer's activations and one chunk of logits, no gradients,
nothing kept), never a second model.

Parameter counts are exact (``ftlab.memory.shapes.model_shape``); activations, slack, context and speed are
estimates until ``benchmarks/gpu_calibrate.py`` has measured them on that GPU, and the plan says which.
"""

from __future__ import annotations

import math
import numbers
import random
from dataclasses import dataclass, field

from ftlab.config import ATTENTION
from ftlab.memory.gpus import GPUSpec, gpu_spec
from ftlab.memory.shapes import GIB, ModelShape, PlanInputError, model_shape, trl_loss
from ftlab.models.loading import DEFAULT_MODEL
from ftlab.models.quantized import nf4_bytes

OPTIMIZER_BYTES = {"adamw_torch": 8, "adamw_torch_fused": 8, "paged_adamw_32bit": 8, "adamw_8bit": 2,
                   "paged_adamw_8bit": 2, "adafactor": 4, "sgd": 0}
PADDINGS = ("pad", "group", "padding_free", "pack")


@dataclass(frozen=True)
class Term:
    name: str
    bytes: float
    how: str  # the formula, in words and numbers


@dataclass
class Plan:
    """Peak GPU memory term by term, whether it fits, and an estimated time per epoch."""

    settings: dict
    gpu: GPUSpec
    terms: list[Term]
    tokens_per_step: int  # token positions one micro-batch processes
    epoch_s: float | None
    useful_ratio: float | None  # eta: real tokens / processed positions
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> float:
        return sum(t.bytes for t in self.terms)

    @property
    def capacity_bytes(self) -> float:
        return self.gpu.memory_gib * GIB

    @property
    def peak_gib(self) -> float:
        return self.total_bytes / GIB

    @property
    def margin_gib(self) -> float:
        """Free memory left at the peak (negative: short by that much)."""
        return (self.capacity_bytes - self.total_bytes) / GIB

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def fits_with(self, margin: float) -> bool:
        """Fits with ``margin`` (a share of the GPU's memory, e.g. 0.1) left free for what the estimate misses."""
        return self.total_bytes <= (1 - margin) * self.capacity_bytes

    def term(self, name: str) -> Term:
        return next(t for t in self.terms if t.name.startswith(name))

    @property
    def largest(self) -> Term:
        return max(self.terms, key=lambda t: t.bytes)

    def advice(self) -> str:
        """What would make a plan that does not fit, fit."""
        s, big = self.settings, self.largest.name
        if big.startswith("activations"):
            fix = ("turn on gradient_checkpointing" if not s["gradient_checkpointing"] else
                   f"halve batch_size to {max(1, s['batch_size'] // 2)} and double gradient_accumulation_steps"
                   f" (or lower max_length from {s['max_length']})")
        elif big.startswith("weights"):
            fix = "load the model in 4-bit (quantization='4bit', QLoRA)" if not s["quantization"] else \
                "use a smaller model or a GPU with more memory"
        elif big.startswith("logits"):
            fix = f"lower batch_size ({s['batch_size']}) or max_length ({s['max_length']})"
        elif big.startswith("CUDA"):
            fix = "nothing in the round can shrink the CUDA context: use a GPU with more memory"
        else:
            fix = "lower the LoRA rank or target fewer layers"
        return f"the largest term is {self.largest.name} ({self.largest.bytes / GIB:.2f} GiB): {fix}"

    def __repr__(self) -> str:
        s = self.settings
        head = (f"Plan: {s['model']} on a {self.gpu.name} ({self.gpu.memory_gib:.2f} GiB) - "
                f"{s['quantization'] or s['precision']}, LoRA r {s['lora_r']} on {', '.join(s['target_modules'])}, "
                f"batch {s['batch_size']} x {s['max_length']} tokens, checkpointing "
                f"{'on' if s['gradient_checkpointing'] else 'off'}, {s['padding']}")
        rows = [f"  {t.name:<38} {t.bytes / GIB:>7.3f} GiB   {t.how}" for t in self.terms]
        verdict = (f"fits, {self.margin_gib:.2f} GiB to spare" if self.fits else
                   f"does NOT fit: {-self.margin_gib:.2f} GiB short - {self.advice()}")
        lines = [head, *rows, f"  {'peak':<38} {self.peak_gib:>7.3f} GiB   {verdict}"]
        source = (f"calibrated from {self.gpu.calibrated_from}" if self.gpu.calibrated_from else
                  "ESTIMATE, not calibrated on this GPU (benchmarks/gpu_calibrate.py measures it)")
        if self.epoch_s is not None:
            lines.append(f"  time per epoch ~ {self.epoch_s / 60:.1f} min ({source})")
        if self.useful_ratio is not None:
            lines.append(f"  useful tokens / processed positions (eta) = {self.useful_ratio:.3f}")
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


# ------------------------------------------------------------------------------------------ the terms
def activation_bytes_per_token(m: ModelShape, a: int, targets, lora_r: int, lora_dropout: float,
                               residual: int) -> float:
    """Bytes autograd keeps per token and decoder layer (no checkpointing), ``a`` bytes per half value.

    RMSNorm x2: its fp32 input and its normalised output; q and k before RoPE; SDPA's q, k, v (k, v
    repeated to every head) and output, plus a fp32 log-sum-exp per head; the MLP's gate, up, SiLU(gate)
    and product; per LoRA layer, with dropout, the dropped input and its mask, and LoRA A's output.
    ``residual``: bytes of the residual stream (fp32 once the embeddings are upcast for QLoRA).
    """
    norms = 2 * (max(4, residual) * m.hidden + a * m.hidden)
    rope = a * (m.hidden + m.kv_heads * m.head_dim)
    sdpa = 4 * a * m.hidden + 4 * m.heads
    mlp = 4 * a * m.intermediate
    inputs = {name: i for name, i, _, _ in m.linears}
    lora = sum((a + 1) * inputs[t] * (lora_dropout > 0) + a * lora_r for t in targets)
    return norms + rope + sdpa + mlp + lora


def memory_terms(m: ModelShape, gpu: GPUSpec, *, quantization, precision, lora_r, targets, lora_dropout,
                 optim, tokens, longest, gradient_checkpointing, attention, double_quant) -> list[Term]:
    a = 4 if precision == "fp32" else 2
    n_lora = m.lora_params(lora_r, targets)
    terms = [Term("CUDA context", gpu.context_gib * GIB, "CUDA + cuBLAS workspace (estimate)")]
    if quantization == "4bit":
        per = [nf4_bytes(i * o, double_quant) * n for _, i, o, n in m.linears]
        terms.append(Term("weights: NF4 linear layers", sum(per),
                          f"{m.linear_params:,} x 4 bits + absmax per 64 ({'8-bit, double quant' if double_quant else 'fp32'})"))
        terms.append(Term("weights: unquantized, fp32", 4 * m.other_params,
                          f"{m.other_params:,} embeddings/norms/lm_head x 4 B (prepare_model_for_kbit_training)"))
    elif quantization == "8bit":
        rows = sum(o * n for _, _, o, n in m.linears)
        terms.append(Term("weights: int8 linear layers", m.linear_params + 4 * rows,
                          f"{m.linear_params:,} x 1 B + fp32 scale per row"))
        terms.append(Term("weights: unquantized, fp32", 4 * m.other_params, f"{m.other_params:,} x 4 B"))
    else:
        terms.append(Term(f"weights: {precision}", a * m.total_params, f"{m.total_params:,} x {a} B"))
    opt = OPTIMIZER_BYTES.get(optim, 8)
    terms.append(Term("LoRA params + grads + optimizer", (8 + opt) * n_lora,
                      f"{n_lora:,} x (4 + 4 + {opt}) B ({optim})"))
    residual = 4 if quantization in ("4bit", "8bit") else a
    per_token = activation_bytes_per_token(m, a, targets, lora_r, lora_dropout, residual) * gpu.activation_scale
    outside = (4 + a + residual) * m.hidden * tokens  # embedding output, final norm
    if gradient_checkpointing:
        acts = residual * m.hidden * tokens * m.layers + per_token * tokens + outside
        how = f"{tokens:,} tokens x ({m.layers} layer inputs x {residual * m.hidden:,} B + one layer {per_token:,.0f} B)"
    else:
        acts = per_token * tokens * m.layers + outside
        how = f"{tokens:,} tokens x {m.layers} layers x {per_token:,.0f} B"
    if attention == "eager":  # the L x L attention probabilities of every head, kept in fp32 and half
        acts += (4 + a) * m.heads * longest * tokens * (1 if gradient_checkpointing else m.layers)
        how += " + eager attention's L x L probabilities"
    terms.append(Term("activations" + (" (checkpointed)" if gradient_checkpointing else ""), acts, how))
    loss = trl_loss()
    if loss.kind == "chunked":
        chunk = min(tokens, loss.token_chunk) * min(m.vocab, loss.vocab_chunk) * a
        terms.append(Term("logits and loss (TRL chunked)", chunk + (a + 4) * m.hidden * tokens + 28 * tokens,
                          f"{min(tokens, loss.token_chunk):,} x {min(m.vocab, loss.vocab_chunk):,} logits x {a} B"
                          f" + hidden and its fp32 gradient"))
    else:
        terms.append(Term("logits and loss (full fp32)", (a + 8) * tokens * m.vocab,
                          f"{tokens:,} x {m.vocab:,} logits in half and fp32, and their gradient"))
    slack = gpu.slack * (terms[-1].bytes + terms[-2].bytes)
    terms.append(Term("allocator slack", slack, f"{gpu.slack:.0%} of activations and loss (estimate)"))
    return terms


# ----------------------------------------------------------------------------------- tokens and time
def processed_positions(lengths, batch_size: int, padding: str, max_length: int, seed: int = 0,
                        accumulation: int = 1) -> int:
    """Token positions one epoch runs through the model: padded batches count their longest row each."""
    lengths = [min(int(n), max_length) for n in lengths]
    if padding in ("padding_free", "pack"):
        return sum(lengths)
    order = list(lengths)
    random.Random(seed).shuffle(order)
    if padding == "group":  # transformers' LengthGroupedSampler: sorted within mega-batches of up to 50
        step = batch_size * accumulation  # effective batches, at most a quarter of the data each
        mega = max(1, min(len(order) // (4 * step), 50)) * step
        order = [n for i in range(0, len(order), mega) for n in sorted(order[i:i + mega], reverse=True)]
    return sum(len(b) * max(b) for b in (order[i:i + batch_size] for i in range(0, len(order), batch_size)))


def flops_per_token(m: ModelShape, n_lora: int, context: float, gradient_checkpointing: bool) -> float:
    """Training FLOPs per token with a frozen base: forward 2P, backward 2P (input gradients only), +2P to
    recompute the decoder layers with checkpointing (the output layer, hidden x vocab whether or not it is tied
    to the embeddings, is not recomputed); attention 4 x hidden x context per layer forward (half of it masked)."""
    passes = 3 if gradient_checkpointing else 2
    matmul = 2 * m.linear_params * passes + 2 * m.hidden * m.vocab * 2 + 6 * n_lora
    return matmul + 2 * m.hidden * context * m.layers * passes


def epoch_seconds(m, gpu, n_lora, lengths, rows, batch_size, max_length, padding, checkpointing, quantization,
                  accumulation=1):
    if lengths is None and rows is None:
        return None, None, None
    lengths = list(lengths) if lengths is not None else [max_length] * int(rows)
    real = sum(min(n, max_length) for n in lengths)
    positions = processed_positions(lengths, batch_size, padding, max_length, accumulation=accumulation)
    steps = math.ceil(len(lengths) / batch_size) if padding != "pack" else math.ceil(positions / (batch_size * max_length))
    context = positions / max(1, len(lengths)) if padding != "padding_free" else batch_size * real / len(lengths)
    flops = flops_per_token(m, n_lora, context, checkpointing) * positions
    seconds = flops / (gpu.achieved_tflops * 1e12) * (gpu.qlora_slowdown if quantization == "4bit" else 1)
    return seconds + steps * gpu.step_overhead_s, real / positions, positions


# ------------------------------------------------------------------------------------------- plan()
def plan(model=DEFAULT_MODEL, quantization: str | None = None, lora_r: int = 16,
         target_modules=ATTENTION, batch_size: int = 4, max_length: int = 512, gradient_checkpointing: bool = True,
         attention: str = "sdpa", gpu="T4", *, config=None, lengths=None, rows: int | None = None,
         padding: str = "pad", optim: str = "adamw_torch", lora_dropout: float = 0.05, double_quant: bool = True,
         precision: str | None = None, gradient_accumulation_steps: int = 1, calibration=None,
         preference: bool = False) -> Plan:
    """The peak GPU memory of a LoRA/QLoRA round, term by term, and an estimated time per epoch.

    ``config`` (a RoundConfig) supplies the knobs it has. ``max_length`` is the longest row, not the
    mean: the biggest batch sets the peak. ``lengths`` (token counts of the rows) or ``rows`` give the time
    per epoch; ``padding`` is ``"pad"``, ``"group"`` (length grouping), ``"padding_free"`` or ``"pack"``.
    ``preference=True``: a preference round (DPO) on an SFT adapter, ``batch_size`` pairs a step (two sequences
    each) and the reference's forward pass (see the module's docstring).
    """
    if config is not None:
        quantization, lora_r, target_modules = config.quantization, config.lora_r, tuple(config.target_modules)
        batch_size, max_length, optim = config.batch_size, config.max_length, config.optim
        gradient_checkpointing, lora_dropout = config.gradient_checkpointing, config.lora_dropout
        padding, gradient_accumulation_steps = padding_of(config), config.gradient_accumulation_steps
    for name, value, choices in (("quantization", quantization, (None, "4bit", "8bit")),
                                 ("attention", attention, ("sdpa", "eager")), ("padding", padding, PADDINGS)):
        if value not in choices:
            raise PlanInputError(f"{name}={value!r}: choose one of {choices}")
    for name, value, what in (("batch_size", batch_size, "rows per forward pass"),
                              ("max_length", max_length, "the longest row, in tokens"), ("lora_r", lora_r, "LoRA rank"),
                              ("gradient_accumulation_steps", gradient_accumulation_steps, "micro-batches per step"),
                              ("rows", 1 if rows is None else rows, "training rows")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise PlanInputError(f"{name}={value!r}: a whole number >= 1 ({what})")
    lengths = checked_lengths(lengths)
    shape = model if isinstance(model, ModelShape) else model_shape(model)
    spec = gpu_spec(gpu, calibration)
    precision = precision or spec.half
    targets = [name for name, *_ in shape.linears] if target_modules in ("all-linear", ["all-linear"]) \
        else list(target_modules)
    longest = min(max_length, max(lengths)) if lengths else max_length
    tokens = batch_size * (max_length if padding == "pack" else longest)
    if padding == "padding_free" and lengths:
        tokens = sum(sorted((min(n, max_length) for n in lengths), reverse=True)[:batch_size])
    if preference:  # chosen and rejected of every pair in one batch
        tokens *= 2
    terms = memory_terms(shape, spec, quantization=quantization, precision=precision, lora_r=lora_r,
                         targets=targets, lora_dropout=lora_dropout, optim=optim, tokens=tokens,
                         longest=longest if padding != "padding_free" else tokens,
                         gradient_checkpointing=gradient_checkpointing, attention=attention,
                         double_quant=double_quant)
    n_lora = shape.lora_params(lora_r, targets)
    if preference:
        terms[-1:-1] = reference_terms(shape, terms, precision, targets, lora_r, lora_dropout, tokens, n_lora,
                                       quantization)
    epoch, eta, _ = epoch_seconds(shape, spec, n_lora, lengths, rows, batch_size, max_length, padding,
                                  gradient_checkpointing, quantization, gradient_accumulation_steps)
    settings = dict(model=shape.name, quantization=quantization, precision=precision, lora_r=lora_r,
                    target_modules=targets, batch_size=batch_size, max_length=max_length, padding=padding,
                    gradient_checkpointing=gradient_checkpointing, attention=attention, optim=optim,
                    trainable_params=n_lora, total_params=shape.total_params)
    notes = list(spec.notes)
    if preference:
        notes.append("preference round: batch_size pairs of two sequences each; the reference is the same weights "
                      "with the SFT adapter's frozen copy, no second model; the time per epoch leaves its forward "
                      "pass out")
    if lengths is None and rows is not None:
        notes.append("no row lengths given: every row counted at max_length (an upper bound)")
    return Plan(settings, spec, terms, tokens, epoch, eta, notes)


def reference_terms(m: ModelShape, terms: list[Term], precision: str, targets, lora_r: int, lora_dropout: float,
                    tokens: int, n_lora: int, quantization) -> list[Term]:
    """What a preference round's reference adds: the SFT adapter's frozen fp32 copy (TRL's "ref" adapter), and its
    forward pass over the batch without gradients, while the policy's activations are held: one layer's activations
    at a time, and one chunk of logits as the policy's loss term counts it."""
    a = 4 if precision == "fp32" else 2
    residual = 4 if quantization in ("4bit", "8bit") else a
    layer = activation_bytes_per_token(m, a, targets, lora_r, lora_dropout, residual) * tokens
    logits = next(t for t in terms if t.name.startswith("logits")).bytes
    return [Term("reference adapter (frozen copy)", 4 * n_lora, f"{n_lora:,} x 4 B: the SFT adapter, copied by TRL"),
            Term("reference forward (no gradients)", layer + logits,
                 f"{tokens:,} tokens x one layer's activations + the loss term's logits, freed after the pass (estimate)")]


def checked_lengths(lengths) -> list[int] | None:
    """``lengths`` as a list of whole token counts; ``PlanInputError`` for an empty list or a count that is not one."""
    if lengths is None:
        return None
    if isinstance(lengths, str | bytes | dict) or not hasattr(lengths, "__iter__"):
        raise PlanInputError(f"lengths={lengths!r}: give a list with each training row's length in tokens")
    lengths = list(lengths)
    if not lengths:
        raise PlanInputError("lengths=[]: no rows to plan for. Give each training row's length in tokens "
                             "(ftlab.templates.token_lengths(rows, tokenizer)), or rows= and max_length=")
    for number, n in enumerate(lengths, start=1):
        whole = isinstance(n, numbers.Integral) or (isinstance(n, float) and n.is_integer())  # numpy ints, 12.0
        if isinstance(n, bool) or not whole or n < 0:
            raise PlanInputError(f"lengths: row {number} has length {n!r}; each length is a whole number of tokens >= 0")
    return [int(n) for n in lengths]


def padding_of(config) -> str:
    """The planner's padding mode for a RoundConfig's knobs."""
    if getattr(config, "packing", False):
        return "pack"
    if getattr(config, "padding_free", False):
        return "padding_free"
    return "group" if getattr(config, "group_by_length", False) else "pad"
