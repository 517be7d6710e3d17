"""What runs beside the trainer while a lab round trains: live logs, heartbeat, checkpoints, guards.

- ``JsonlLog`` appends each log (loss, learning rate, grad norm, eval loss) to ``log.jsonl`` and
  fsyncs it, so a disconnect loses at most the current logging window, never the history.
- ``Heartbeat`` rewrites the round's progress every ~30 s: a lab read from another machine (Drive
  after a Colab disconnect) can tell a round that stopped breathing from one still running.
- ``CheckpointClock`` saves a checkpoint every ``minutes`` of wall time whatever the step count,
  and records each complete checkpoint so ``lab.resume`` knows where to start.
- ``DivergenceGuard`` stops a round within a step of NaN/inf weights or loss, or after a few logs
  of exploding loss, instead of burning a Colab session on a dead run.
- ``capture_output`` tees stdout and stderr into the round folder, secrets scrubbed.
- ``tracker_env`` sets up TensorBoard / wandb / trackio when asked, without a login prompt.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import TrainerCallback

from ftlab.records import HEARTBEAT_EVERY_S, append_jsonl, now


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
    """Save every ``minutes`` as well as every ``save_steps``: a Colab session can end at any minute."""

    def __init__(self, round_, minutes: float = 10):
        self.round, self.every_s, self.last = round_, minutes * 60, time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.last > self.every_s:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()
        self.round.update(last_checkpoint=f"checkpoint-{state.global_step}", heartbeat=now(),
                          progress={"step": state.global_step, "max_steps": state.max_steps})


class DivergenceGuard(TrainerCallback):
    """Stops training on NaN/inf weights or loss, or loss above ``factor`` x the first for ``patience`` logs.

    The trainer hides NaN losses from its logs (``logging_nan_inf_filter`` averages them away, and a
    window of only NaN logs as 0.0), so the trainable weights are checked after every step as well.
    Under fp16 a skipped step gives an inf grad norm now and then: that alone is not divergence.
    """

    def __init__(self, factor: float = 3.0, patience: int = 2):
        self.factor, self.patience = factor, patience
        self.first_loss: float | None = None
        self.strikes = 0
        self.bad_grad_logs = 0
        self.reason: str | None = None
        self.step: int | None = None

    def _stop(self, state, control, reason: str):
        if self.reason is None:
            self.reason, self.step = reason, state.global_step
            print(f"\nStopping the round at step {state.global_step}: {reason}", file=sys.stderr)
        control.should_training_stop = True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or self.reason:
            return
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        # one device sync for all tensors, not one per tensor: the check stays cheap on a GPU
        if trainable and not torch.stack([p.detach().isfinite().all() for _, p in trainable]).all():
            name = next(n for n, p in trainable if not p.detach().isfinite().all())
            self._stop(state, control, f"weights became NaN or inf ({name}) at step {state.global_step}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        for key in ("loss", "eval_loss"):
            value = logs.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                return self._stop(state, control, f"{key} is {value} at step {state.global_step}")
        grad = logs.get("grad_norm")
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


# ------------------------------------------------------------------------------------------ output
class _Tee:
    """Writes through to the notebook / terminal and, line by line and scrubbed, to a log file."""

    def __init__(self, original, path: Path, scrub):
        self.original, self.scrub, self.pending = original, scrub, ""
        self.file = open(path, "a", encoding="utf-8")

    def write(self, text: str) -> int:
        self.original.write(text)
        for part in re.split(r"(\r|\n)", text):
            if part == "\n":
                self.file.write(self.scrub.text(self.pending) + "\n")
                self.pending = ""
            elif part == "\r":
                self.pending = ""  # a progress bar redrawing its line: keep only the line's last state
            else:
                self.pending += part
        self.file.flush()
        return len(text)

    def flush(self):
        self.original.flush()
        self.file.flush()

    def close(self):
        if self.pending.strip():
            self.file.write(self.scrub.text(self.pending) + "\n")
        self.file.close()

    def __getattr__(self, name):  # isatty, fileno, encoding, ... as the real stream says
        return getattr(self.original, name)


@contextmanager
def capture_output(folder: Path, scrub):
    """Tee ``sys.stdout`` and ``sys.stderr`` into ``stdout.log`` / ``stderr.log`` of ``folder``."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, Path(folder) / "stdout.log", scrub), _Tee(err, Path(folder) / "stderr.log", scrub)
    try:
        yield
    finally:
        tees = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        for tee in tees:
            if isinstance(tee, _Tee):
                tee.close()


# ------------------------------------------------------------------------------------------ trackers
@contextmanager
def tracker_env(report_to: str):
    """TensorBoard, wandb or trackio when the config asks; never a login prompt (it blocked Kaggle runs).

    wandb logs online when a key is found (``WANDB_API_KEY`` or ``wandb login`` earlier), otherwise
    offline into ./wandb (``wandb sync`` uploads it later). TensorBoard writes into the round folder.
    """
    import importlib.util

    from ftlab.config import ConfigError

    saved = {name: os.environ.get(name) for name in ("WANDB_MODE", "WANDB_PROJECT")}
    modules = ("tensorboard", "tensorboardX") if report_to == "tensorboard" else (report_to,)
    if report_to != "none" and all(importlib.util.find_spec(m) is None for m in modules):
        raise ConfigError(f"RoundConfig.report_to = {report_to!r} needs the {report_to} package: "
                          f"pip install {report_to} (or report_to='none')")
    if report_to == "wandb":
        logged_in = bool(os.environ.get("WANDB_API_KEY")) or _has_netrc_login("api.wandb.ai")
        os.environ["WANDB_MODE"] = "online" if logged_in else "offline"
        os.environ.setdefault("WANDB_PROJECT", "ftlab")
        if not logged_in:
            print("wandb: no API key found, so logging offline to ./wandb (no login prompt). "
                  "Upload later with `wandb sync`, or set WANDB_API_KEY before training.")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _has_netrc_login(host: str) -> bool:
    try:
        import netrc

        return netrc.netrc().authenticators(host) is not None
    except Exception:  # no ~/.netrc or an unreadable one: not logged in
        return False
