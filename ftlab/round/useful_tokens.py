"""How much of what the GPU computes is real text: the useful-token ratio, and padding-free batches.

A padded micro-batch is as long as its longest row: every shorter row is filled with pad tokens that
go through every layer and are then thrown away. The useful-token ratio

    eta = non-pad tokens / token positions processed

says what share of the work was real. ``UsefulTokens`` wraps the trainer's data collator and counts
both for every training batch of a round (``RoundResult.useful_token_ratio``). Padding-free batches lay
a micro-batch's rows end to end as one row of ``position_ids`` that restart at 0 for every row: with
SDPA attention and no attention mask, transformers turns those position ids into a block-diagonal
mask, so no row attends to another (tests/test_batches.py proves it on the tiny model).

The output layer is the other place where work is wasted. It turns every position's hidden state
into a score for each of the vocabulary's tokens (hidden x vocab multiply-adds per position:
576 x 49,152 for SmolLM2, 2,048 x 32,000 for TinyLlama), but only the positions that carry loss
need it. TRL's fused LM head scores only those on a GPU with Triton; everywhere else it scores every
position (padding and prompt included, to keep tile shapes fixed for compiling backends) and zeroes the
rest. Inside ``score_loss_positions_only`` it scores only the loss-carrying positions on the CPU too
(``train_round`` trains and evaluates inside it): the same loss and gradients (tests/test_batches.py),
less work when the loss is on the answers alone.

``RoundMeter`` measures a round beside its plan: eta, token positions per second and, on a GPU, the
peak memory allocated and reserved next to what ``ftlab.plan`` predicted, and the model-FLOPs utilization:
the FLOPs the round's positions need (``ftlab.memory.estimate.flops_per_token``) per second of its wall time,
against the GPU's sustained half-precision matmul rate (a T4: ~24 TFLOPS under its 70 W cap) and its datasheet
peak (65). A round rehearsed on the CPU (``FTLAB_REHEARSE``) measures no GPU: it says so instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import time

from ftlab.machine import gpu_info, has_gpu
from ftlab.memory.estimate import flops_per_token, plan
from ftlab.memory.gpus import GPUSpec, gpu_for
from ftlab.memory.shapes import PlanInputError, model_shape


def batch_counts(batch) -> tuple[int, int]:
    """(non-pad tokens, processed positions) of one collated batch.

    A padded batch marks its real tokens in ``attention_mask``; a padding-free batch has no mask and
    no padding (TRL pads it only to ``pad_to_multiple_of``, which ftlab leaves unset).
    """
    positions = int(batch["input_ids"].numel())
    mask = batch.get("attention_mask")
    return (int(mask.sum()) if mask is not None else positions), positions


class UsefulTokens:
    """A data collator that counts eta over the training batches (batches made while the model trains)."""

    def __init__(self, collate, model):
        self.collate, self.model = collate, model
        self.real = self.positions = self.rows = 0

    def __call__(self, features):
        batch = self.collate(features)
        if getattr(self.model, "training", True):
            real, positions = batch_counts(batch)
            self.real += real
            self.positions += positions
            self.rows += len(features)
        return batch

    @property
    def ratio(self) -> float | None:
        return self.real / self.positions if self.positions else None


def count_useful_tokens(trainer) -> UsefulTokens:
    """Wrap ``trainer``'s collator so that the round can report its useful-token ratio."""
    counter = UsefulTokens(trainer.data_collator, trainer.model)
    trainer.data_collator = counter
    return counter


_LOSS_POSITIONS_ONLY = contextvars.ContextVar("ftlab_loss_positions_only", default=False)


@contextlib.contextmanager
def score_loss_positions_only():
    """Inside the block, in this thread only, TRL's fused LM head scores only the positions that carry loss.

    TRL asks one rule (``trl.trainer.utils._use_triton``) on every forward pass whether to score every
    position or only the labelled ones; ftlab extends that rule once so that it says "only the labelled
    ones" wherever this block is open. Other threads, and TRL trainers of the learner's own, keep TRL's answer.
    """
    _extend_trls_rule()
    token = _LOSS_POSITIONS_ONLY.set(True)
    try:
        yield
    finally:
        _LOSS_POSITIONS_ONLY.reset(token)


def _extend_trls_rule() -> None:
    import trl.trainer.utils as fused_head

    trls_rule = fused_head._use_triton  # an AttributeError here means TRL changed: tests/test_batches.py says so
    if getattr(trls_rule, "extended_by_ftlab", False):
        return

    def labelled_positions_only(device) -> bool:
        return _LOSS_POSITIONS_ONLY.get() or trls_rule(device)

    labelled_positions_only.extended_by_ftlab = True
    fused_head._use_triton = labelled_positions_only


class RoundMeter:
    """eta, tokens/s and (on a GPU) peak memory and model-FLOPs utilization of one round, beside the plan."""

    def __init__(self, trainer, config, model):
        self.tokens = count_useful_tokens(trainer)
        self.config, self.model = config, model
        self.planned = _plan_here(config, model, getattr(trainer, "train_dataset", None))
        self.started = None

    def start(self) -> None:
        import torch

        if has_gpu():
            torch.cuda.reset_peak_memory_stats()  # torch's own allocator counters: only torch keeps them
        self.started = time.perf_counter()

    def read(self) -> dict:
        import torch

        seconds = time.perf_counter() - self.started
        facts = {"wall_time_s": seconds, "useful_token_ratio": self.tokens.ratio,
                 "tokens_per_s": round(self.tokens.positions / seconds, 1) if seconds > 0 else None}
        if has_gpu():
            facts["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            facts["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
            facts.update(self.utilization(seconds))
        if self.planned is not None:
            facts["planned_peak_gib"] = round(self.planned.peak_gib, 3)
        return facts

    def utilization(self, seconds: float) -> dict:
        """Model TFLOPS of the round's positions over ``seconds``, and their share of this GPU's sustained and peak
        half-precision rates (the model's FLOPs, not the hardware's: recomputation counts once checkpointing is on)."""
        spec = self.planned.gpu if self.planned is not None else None
        if not isinstance(spec, GPUSpec) or seconds <= 0 or not self.tokens.rows:
            return {}
        try:
            shape = model_shape(self.model)
            n_lora = shape.lora_params(self.config.lora_r, self.config.target_modules)
        except PlanInputError:  # a model the planner cannot size
            return {}
        context = self.tokens.positions / self.tokens.rows
        flops = flops_per_token(shape, n_lora, context, self.config.gradient_checkpointing) * self.tokens.positions
        tflops = flops / seconds / 1e12
        facts = {"model_tflops": round(tflops, 2)}
        for key, rate in (("mfu_sustained", spec.sustained_tflops), ("mfu_peak", spec.peak_tflops)):
            if rate:
                facts[key] = round(tflops / rate, 3)
        return facts


def _plan_here(config, model, rows=None):
    """The plan for this round on this GPU (None on a CPU, or for a model the planner cannot size).

    Planned with the lengths of the rows that train (``rows``, tokenized), so that the prediction is for
    the batches that run: without them the plan takes every row at max_length, an upper bound that a
    round of short rows stays far below.
    """
    name, _, _, memory = gpu_info()
    if name is None:
        return None

    columns = getattr(rows, "column_names", None) or ()
    lengths = [len(ids) for ids in rows["input_ids"]] if "input_ids" in columns else None
    try:
        return plan(model_shape(model), config=config, gpu=gpu_for(name, memory), lengths=lengths or None)
    except PlanInputError:
        return None
