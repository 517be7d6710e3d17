"""Around one round's training in the lab: its checkpoint schedule, its record at the end, freeing memory.

``with_checkpoints`` gives a round without ``save_steps`` a schedule that survives a Colab disconnect;
``record_outcome`` writes what a finished round measured (its metrics and scores side by side, what ran,
a few sample answers, or the divergence the guard caught, or an accuracy collapse) into its record;
``free_memory`` lets go of a round's tensors.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import sys

from ftlab.evaluation.scoring import answer_rows
from ftlab.lab.failures import FP16_OVERFLOW, collapse, divergence, fp16_overflow
from ftlab.machine import has_gpu

CHECKPOINT_MINUTES = 10


def with_checkpoints(config, train, say: bool = True):
    """The config with a checkpoint schedule that suits Colab, if it has none (said when ``say``).

    A free Colab or Kaggle session can end at any minute. Without ``save_steps`` the lab saves every
    tenth of the round, at least every 10 and at most every 200 steps (~10 minutes of TinyLlama on a
    T4), and ``CheckpointClock`` adds one every 10 minutes of wall time when steps are slow. The
    trainer keeps the two newest, so the space used stays small.
    """
    if config.save_steps or not isinstance(train, list):
        return config
    if config.max_steps > 0:
        steps = config.max_steps
    else:  # from the number of rows (never the length of a path)
        batches = math.ceil(len(train) / config.batch_size)
        steps = math.ceil(math.ceil(batches / config.gradient_accumulation_steps) * config.num_train_epochs)
    every = max(10, min(200, steps // 10))
    if steps < every:  # a round this short writes no checkpoint: nothing to say, nothing to resume
        return config
    if say:  # the lab says it at its first round: a notice per round buries the results
        print(f"Checkpoints every {every} steps and every {CHECKPOINT_MINUTES} minutes, so lab.resume(id) can "
              "continue after a disconnect.")
    return dataclasses.replace(config, save_steps=every)


def record_outcome(round_, config, result, guard, inputs, samples, score, reference=None):
    """The round's record once it trained: metrics, scores beside them (``score``), samples from ``inputs``
    (the round's ``RoundInputs``), and its status: succeeded, diverged (the guard or a non-finite loss), or
    collapsed (a score fell against ``reference``, each score's median over the lab's other rounds on these
    eval rows, ``failures.collapse``)."""
    round_.update(substitutions=result.substitutions,  # what ran differently from the config, and why
                  rehearsal=result.rehearsal)  # rehearsed on the CPU as a T4: what it cannot show
    metrics = {"train_loss": result.train_loss, "eval_loss": result.eval_loss, "optimizer": result.optimizer,
               "eval_loss_before": result.eval_loss_before, "perplexity": result.perplexity,
               "wall_time_s": round(result.wall_time_s, 2), "trainable_params": result.trainable_params,
               "total_params": result.total_params, "precision": result.precision,
               "quantization": getattr(result, "quantization", None),
               "steps": max((h.get("step", 0) for h in result.log_history), default=0),
               **result.measured}  # eta, tokens/s; on a GPU peak memory beside the plan's prediction
    finite = result.train_loss is not None and math.isfinite(result.train_loss)
    if guard.skipped:
        metrics["fp16_skipped_steps"] = guard.skipped  # steps the gradient scaler skipped on inf/NaN gradients
    if guard.reason or not finite:
        reason = guard.reason or f"train loss is {result.train_loss}"
        overflow = guard.kind == FP16_OVERFLOW or (not finite and result.precision == "fp16")
        if hasattr(guard, "failure"):  # a preference round's guard classifies its own stops
            failure, status = guard.failure(config, reason, overflow), guard.status
        else:
            failure = fp16_overflow(reason, config) if overflow else divergence(reason, config)
            status = "diverged"
        if score is not None and result.model is not None:  # what the stopped round does now, beside its stop
            metrics.update(scores_beside(dict(score(result.model, inputs.tokenizer)), metrics))
        return round_.finish(status, metrics=metrics, failure=failure.to_dict(), stopped_at_step=guard.step)
    rows = (inputs.eval if inputs.eval is not None else inputs.train).dataset  # the rows converted at the door
    if samples and rows is not None:
        round_.write_samples(answer_rows(result.model, inputs.tokenizer, rows.select(range(min(samples, len(rows)))),
                                         template=inputs.template, progress=False))
    if score is not None:
        metrics.update(scores_beside(dict(score(result.model, inputs.tokenizer)), metrics))
    fallen = collapse({k: metrics[k] for k in metrics.get("scores", [])}, reference or {}, config, result.train_loss)
    if fallen is not None:
        return round_.finish("collapsed", metrics=metrics, failure=fallen.to_dict(), adapter="adapter")
    round_.finish("succeeded", metrics=metrics, adapter="adapter")


def scores_beside(scores: dict, metrics: dict) -> dict:
    """The scores to write beside the round's own metrics, found by name as its eval loss is, and ``scores``,
    their names. A score named like one of the lab's own metrics is refused: it would overwrite it."""
    clash = sorted(set(scores) & set(metrics))
    if clash:
        raise ValueError(f"score() returned {clash}, name(s) the lab records itself ({', '.join(metrics)}): "
                         "rename them in your score function (e.g. 'my_' + name)")
    return {**scores, "scores": list(scores)}


def free_memory() -> None:
    """Collect the failed round's objects and empty torch's CUDA cache; memory still referenced elsewhere stays taken."""
    gc.collect()
    torch = sys.modules.get("torch")  # nothing to empty when torch never loaded
    if torch is not None and has_gpu():
        torch.cuda.empty_cache()  # torch's own allocator cache: only torch can empty it

