"""What a round shows while it trains: one line that moves, then the losses the chapters explain.

transformers' notebook progress draws, per round, a bar for the evaluation before training with an HTML
table, then a training bar with another table of every logged column (TRL adds entropy, mean token
accuracy and token counts, which no chapter explains). ``RoundProgress`` replaces them with a single
output updated in place: while training, the step, the time and the latest losses; when the round
ends, a short table of step, train loss and eval loss. Everything the trainer logged stays in the
round's ``log_history`` (and in a lab round's ``log.jsonl``).

Outside a notebook (a script, ``ftlab demo``, ``ftlab train``) a round prints ``LossLines`` instead of the
trainer's bars and metric dictionaries (``{'eval_loss': '5.841', ...}``, about 800 lines for ten tiny rounds):
one line per evaluation, and a train-loss line when no evaluation has been printed for ``QUIET_S`` seconds.
A callback that ``replaces_progress`` (the widget panel's bar) replaces both. ``FTLAB_TRAINER_PROGRESS=1`` keeps the
trainer's own bars and dictionaries instead (``ftlab train --verbose``).
"""

from __future__ import annotations

import os
import sys
import time

from transformers import TrainerCallback

from ftlab.console import lines as console_lines
from ftlab.console.lines import Line, time_left

MAX_ROWS = 8  # a longer table keeps its first rows, evenly spaced ones and the last
KEEP_TRAINERS = "FTLAB_TRAINER_PROGRESS"  # "1": outside a notebook, the trainer's own bars and dictionaries
QUIET_S = 30.0  # outside a notebook, a train-loss line when nothing was printed for this long: the round is alive


def take_over(trainer, callbacks) -> None:
    """Drop the trainer's bars and log printer: ftlab shows a round's progress itself.

    In a notebook ``RoundProgress`` is added, elsewhere ``LossLines`` on stdout, unless a callback already
    ``replaces_progress`` (``ftlab demo``'s lines, the widget panel's bar).
    """
    from transformers.trainer import DEFAULT_PROGRESS_CALLBACK, PrinterCallback

    if os.environ.get(KEEP_TRAINERS) == "1" and not console_lines.in_notebook():
        return
    for noisy in (DEFAULT_PROGRESS_CALLBACK, PrinterCallback):
        trainer.remove_callback(noisy)
    if not any(getattr(c, "replaces_progress", False) for c in callbacks or []):
        trainer.add_callback(RoundProgress() if console_lines.in_notebook() else LossLines())  # looked up now, not at import


class RoundProgress(TrainerCallback):
    """One notebook output per round: live step and losses, then the table of evaluations."""

    replaces_progress = True

    def __init__(self):
        self.line, self.started = None, None
        self.rows: list[tuple[int, float | None, float]] = []  # step, last train loss, eval loss
        self.train_loss: float | None = None
        self.logged_steps: list[int] = []  # the steps at which a train loss was logged
        self.first_train_loss: float | None = None

    # ------------------------------------------------------------------ trainer events
    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self._show(self._live(state), force=True)

    def on_step_end(self, args, state, control, **kwargs):
        self._show(self._live(state))

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.train_loss = logs["loss"]
            self.logged_steps.append(state.global_step)
            self.first_train_loss = self.first_train_loss if self.first_train_loss is not None else logs["loss"]
        if "eval_loss" in logs:
            self.rows.append((state.global_step, self.train_loss if state.global_step else None, logs["eval_loss"]))
            if self.started is None:  # the evaluation before training
                self._show(f"before training: eval loss {logs['eval_loss']:.4f}", force=True)

    def on_train_end(self, args, state, control, **kwargs):
        self._show(self.final(state.global_step), force=True)

    # ------------------------------------------------------------------ what is shown
    def _live(self, state) -> str:
        elapsed = time.perf_counter() - (self.started or time.perf_counter())
        step, total = state.global_step, max(state.max_steps, 1)
        left = time_left(elapsed, step, total)
        losses = "".join(f" · {name} {value:.4f}" for name, value in (("train loss", self.train_loss),
                         ("eval loss", self.rows[-1][2] if self.rows else None)) if value is not None)
        return f"training: step {step}/{total}, {elapsed:.0f} s{left}{losses}"

    def final(self, steps: int) -> str:
        """The round in a few lines: time, then step / train loss / eval loss at each evaluation."""
        elapsed = time.perf_counter() - (self.started or time.perf_counter())
        head = f"{steps} steps in {elapsed:.0f} s"
        if not self.rows:
            if self.first_train_loss is None:
                return head
            return f"{head}: train loss {self.first_train_loss:.4f} -> {self.train_loss:.4f}"
        rows = self.rows
        if len(rows) > MAX_ROWS:
            keep = sorted({0, len(rows) - 1, *range(0, len(rows), -(-len(rows) // (MAX_ROWS - 1)))})
            rows = [rows[i] for i in keep]
        lines = [f"{'step':>6}  {'train loss':>10}  {'eval loss':>9}"]
        before = 0
        for step, train, evaluated in rows:
            # a train loss only where one was logged since the row above: a repeated old value reads as a stall
            if not any(before < logged <= step for logged in self.logged_steps):
                train = None
            lines.append(f"{step:>6}  {'-' if train is None else f'{train:.4f}':>10}  {evaluated:>9.4f}")
            before = step
        return "\n".join([head, *lines])

    def _show(self, text: str, force: bool = False) -> None:
        self.line = self.line or Line()
        self.line.show(text, force)


class QuietProgress(RoundProgress):
    """A quiet lab round's progress: one line that moves while it trains (``label``: step, time, losses), then
    ``end(text)`` leaves the round's verdict in its place. Where no line can move (a file, a pipe), ``end``
    prints the verdict to ``out``."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def _live(self, state) -> str:
        return f"{self.label}: {super()._live(state)}"

    def on_train_end(self, args, state, control, **kwargs):
        pass  # the verdict replaces the line once the lab has measured the round

    def end(self, text: str, out=None) -> None:
        if self.line is not None and (self.line.notebook or self.line._in_place()):
            self.line.end(text)
        else:
            print(text, file=out or sys.stdout)


class LossLines(TrainerCallback):
    """One printed line per evaluation (step, train loss, eval loss, seconds) instead of log dicts and bars.

    For a terminal or a log file (a script, ``ftlab demo``, ``ftlab train``): without evaluation, a line per
    logged train loss; between evaluations more than ``QUIET_S`` seconds apart, a train-loss line at the
    first log after that long. Printed by the main process only. ``replaces_progress`` tells
    ``train_round`` that the trainer's own bars and printer are not wanted beside it.
    """

    replaces_progress = True

    def __init__(self, out=None):
        self.out, self.started, self.train_loss = out, time.perf_counter(), None
        self.printed_at = self.started

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not getattr(state, "is_world_process_zero", True):  # under torchrun: the main process speaks
            return
        elapsed = time.perf_counter() - self.started
        if "loss" in logs:
            self.train_loss = logs["loss"]
            # no evaluation to report, or none for a while: the train loss, so a long round is seen alive
            if args.eval_strategy == "no" or time.perf_counter() - self.printed_at >= QUIET_S:
                left = time_left(elapsed, state.global_step, state.max_steps)
                self._print(f"  step {state.global_step:>4}/{state.max_steps}: train loss {logs['loss']:.3f} "
                            f"({elapsed:.0f} s{left})")
        if "eval_loss" in logs and not state.max_steps:  # the evaluation before training starts
            self._print(f"  before training: eval loss {logs['eval_loss']:.3f}")
        elif "eval_loss" in logs:
            train = f"train loss {self.train_loss:.3f}, " if self.train_loss is not None else ""
            self.train_loss = None  # shown once: a later line without a new one leaves it out
            self._print(f"  step {state.global_step:>4}/{state.max_steps}: {train}eval loss {logs['eval_loss']:.3f} "
                        f"({elapsed:.0f} s)")

    def _print(self, line: str) -> None:
        self.printed_at = time.perf_counter()
        print(line, file=self.out or sys.stdout, flush=True)  # looked up when printed: a redirect is honoured
