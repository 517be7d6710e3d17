"""Watchers: the trainer callbacks that run beside a lab round: live logs, heartbeat, checkpoints, guards.

- ``JsonlLog`` appends each log (loss, learning rate, grad norm, eval loss) to ``log.jsonl`` and
  fsyncs it, so a disconnect loses at most the current logging window, never the history.
- ``Heartbeat`` rewrites the round's progress every ~30 s: a lab read from another machine (Drive
  after a Colab disconnect) can tell a round that stopped breathing from one still running.
- ``CheckpointClock`` saves a checkpoint every ``minutes`` of wall time whatever the step count,
  and records each complete checkpoint so ``lab.resume`` knows where to start.
- ``DivergenceGuard`` stops a round within a step of NaN/inf weights or loss, or after a few logs
  of exploding loss, instead of burning a Colab session on a dead run. In fp16 mixed precision an inf or
  NaN loss, or a gradient scaler that skips step after step, is named an fp16 overflow (``kind``).
- ``PreferenceGuard`` adds, for a preference round, a stop when the chosen answers' log-probabilities collapse
  or the reward margin explodes (TRL's ``logps/chosen`` and ``rewards/margins`` logs), classified with advice.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from ftlab.lab.failures import (
    DIVERGENCE,
    FP16_OVERFLOW,
    MARGIN_EXPLOSION,
    PREFERENCE_COLLAPSE,
    divergence,
    fp16_overflow,
    preference_failure,
)
from ftlab.lab.storage import append_jsonl, now

HEARTBEAT_EVERY_S = 30


class JsonlLog(TrainerCallback):
    def __init__(self, path: Path, attempt: int = 1):
        self.path, self.attempt = Path(path), attempt

    def on_log(self, args, state, control, logs=None, **kwargs):
        append_jsonl(self.path, {"step": state.global_step, "epoch": state.epoch, "time": now(),
                                 "attempt": self.attempt, **(logs or {})})


class Heartbeat(TrainerCallback):
    def __init__(self, round_):
        self.round, self.last = round_, 0.0

    def _beat(self, state, force=False):
        if force or time.monotonic() - self.last > HEARTBEAT_EVERY_S:
            self.last = time.monotonic()
            self.round.update(heartbeat=now(), progress={"step": state.global_step, "max_steps": state.max_steps})

    def on_train_begin(self, args, state, control, **kwargs):
        self._beat(state, force=True)

    def on_step_end(self, args, state, control, **kwargs):
        self._beat(state)

    def on_prediction_step(self, args, state, control, **kwargs):
        self._beat(state)  # a long evaluation is not a dead round


class CheckpointClock(TrainerCallback):
    """Save every ``minutes`` as well as every ``save_steps``: a Colab session can end at any minute.

    ``minutes=None`` only records the checkpoints ``save_steps`` makes: in a distributed round every
    process must decide to save at the same step, and clocks differ between processes.
    """

    def __init__(self, round_, minutes: float | None = 10):
        self.round, self.last = round_, time.monotonic()
        self.every_s = None if minutes is None else minutes * 60

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_s is not None and time.monotonic() - self.last > self.every_s:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()
        self.round.update(last_checkpoint=f"checkpoint-{state.global_step}", heartbeat=now(),
                          progress={"step": state.global_step, "max_steps": state.max_steps})


class DivergenceGuard(TrainerCallback):
    """Stops training on NaN/inf weights or loss, or loss above ``factor`` x the first for ``patience`` logs.

    The trainer hides NaN losses from its logs (``logging_nan_inf_filter`` averages them away, and a
    window of only NaN logs as 0.0), so the trainable weights are checked after every step as well.
    Under fp16 a skipped step gives an inf grad norm now and then: that alone is not divergence. The
    gradient scaler skips such a step and halves its scale; ``skips`` skips in a row (from 65,536 the scale
    is then below 0.1) mean the gradients overflow at any scale: an fp16 overflow (``kind``), as is a loss
    that is inf or NaN in fp16.
    """

    def __init__(self, factor: float = 3.0, patience: int = 2, skips: int = 20):
        self.factor, self.patience, self.skips = factor, patience, skips
        self.first_loss: float | None = None
        self.strikes = 0
        self.bad_grad_logs = 0
        self.skipped = self.skipped_in_a_row = 0  # optimiser steps the fp16 gradient scaler skipped
        self.reason: str | None = None
        self.kind: str | None = None  # DIVERGENCE or FP16_OVERFLOW once stopped
        self.step: int | None = None

    def _stop(self, state, control, reason: str, kind: str = DIVERGENCE):
        if self.reason is None:
            self.reason, self.step, self.kind = reason, state.global_step, kind
            print(f"\nStopping the round at step {state.global_step}: {reason}", file=sys.stderr)
        control.should_training_stop = True

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is None or self.reason:
            return
        if getattr(optimizer, "step_was_skipped", False):  # accelerate's optimizer under a gradient scaler
            self.skipped += 1
            self.skipped_in_a_row += 1
            if self.skipped_in_a_row >= self.skips:
                scale = optimizer.scaler.get_scale() if getattr(optimizer, "scaler", None) is not None else None
                shown = f" (its scale is down to {scale:.3g})" if scale is not None else ""
                return self._stop(state, control, f"the fp16 gradient scaler skipped {self.skipped_in_a_row} steps in a "
                                  f"row{shown}: the gradients are inf or NaN at any scale", FP16_OVERFLOW)
        else:
            self.skipped_in_a_row = 0
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        # one device sync for all tensors, not one per tensor: the check stays cheap on a GPU
        if trainable and not torch.stack([p.detach().isfinite().all() for _, p in trainable]).all():
            name = next(n for n, p in trainable if not p.detach().isfinite().all())
            self._stop(state, control, f"weights became NaN or inf ({name}) at step {state.global_step}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        fp16 = bool(getattr(args, "fp16", False))  # fp16 mixed precision: a gradient scaler runs
        for key in ("loss", "eval_loss"):
            value = logs.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                return self._stop(state, control, f"{key} is {value} at step {state.global_step}"
                                  + (" in fp16" if fp16 else ""), FP16_OVERFLOW if fp16 else DIVERGENCE)
        grad = None if fp16 else logs.get("grad_norm")  # in fp16 the scaler's skips tell it (on_step_end)
        self.bad_grad_logs = self.bad_grad_logs + 1 if isinstance(grad, float) and not math.isfinite(grad) else 0
        if self.bad_grad_logs >= 3:
            return self._stop(state, control, f"gradient norm non-finite for 3 logs in a row (step {state.global_step})")
        loss = logs.get("loss")
        if not isinstance(loss, int | float):
            return
        if self.first_loss is None:
            self.first_loss = float(loss)
        elif loss > self.factor * self.first_loss:
            self.strikes += 1
            if self.strikes >= self.patience:
                self._stop(state, control, f"loss exploded to {loss:.3g} (first logged {self.first_loss:.3g}) "
                                           f"at step {state.global_step}")
        else:
            self.strikes = 0


class PreferenceGuard(DivergenceGuard):
    """``DivergenceGuard``'s checks, and for a preference round (``PreferenceConfig``'s limits): a stop when the
    chosen answers' mean log-probability falls ``collapse_nats`` below its first logged value, or the mean reward
    margin passes ``margin_limit``. ``failure(config)`` classifies the stop, with advice."""

    def __init__(self, preference):
        super().__init__()
        self.preference = preference
        self.first_chosen: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=logs, **kwargs)
        logs = logs or {}
        chosen, margin = logs.get("logps/chosen"), logs.get("rewards/margins")
        if self.reason or not isinstance(chosen, int | float):
            return
        if self.first_chosen is None:
            self.first_chosen = float(chosen)
        drop = self.first_chosen - chosen
        if not math.isfinite(chosen) or drop > self.preference.collapse_nats:
            return self._stop(state, control, f"the chosen answers' mean log-probability fell from "
                              f"{self.first_chosen:.3g} to {chosen:.3g} (by more than {self.preference.collapse_nats:g}"
                              f" nats) at step {state.global_step}", PREFERENCE_COLLAPSE)
        if isinstance(margin, int | float) and (not math.isfinite(margin) or margin > self.preference.margin_limit):
            self._stop(state, control, f"the mean reward margin reached {margin:.3g} (limit "
                       f"{self.preference.margin_limit:g}) at step {state.global_step}", MARGIN_EXPLOSION)

    def failure(self, config, reason: str, fp16: bool = False):
        """The stop, classified: a preference collapse, a margin explosion, or the divergence guard's own."""
        if self.kind in (PREFERENCE_COLLAPSE, MARGIN_EXPLOSION):
            return preference_failure(self.kind, reason, config, self.preference.beta)
        return fp16_overflow(reason, config) if fp16 else divergence(reason, config)

    @property
    def status(self) -> str:
        return "collapsed" if self.kind == PREFERENCE_COLLAPSE else "diverged"
