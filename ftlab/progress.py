"""What a round shows in a notebook while it trains: one line that moves, then the losses the chapters explain.

transformers' notebook progress draws, per round, a bar for the evaluation before training with an HTML
table, then a training bar with another table of every logged column (TRL adds entropy, mean token
accuracy and token counts, which no chapter explains). ``RoundProgress`` replaces them with a single
output updated in place: while training, the step, the time and the latest losses; when the round
ends, a short table of step, train loss and eval loss. Everything the trainer logged stays in the
round's ``log_history`` (and in a lab round's ``log.jsonl``).

Outside a notebook (a terminal, ``ftlab train``) the trainer keeps its own progress.
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from ftlab.quiet import in_notebook

MAX_ROWS = 8  # a longer table keeps its first rows, evenly spaced ones and the last


def take_over(trainer, callbacks) -> None:
    """Drop the trainer's bars and log printer where ftlab shows progress itself.

    That is in a notebook (``RoundProgress`` is added), or wherever a callback says it
    ``replaces_progress`` (``ftlab demo``'s lines, the widget panel's bar).
    """
    from transformers.trainer import DEFAULT_PROGRESS_CALLBACK, PrinterCallback

    replaced = any(getattr(c, "replaces_progress", False) for c in callbacks or [])
    if not replaced and not in_notebook():
        return
    for noisy in (DEFAULT_PROGRESS_CALLBACK, PrinterCallback):
        trainer.remove_callback(noisy)
    if not replaced:
        trainer.add_callback(RoundProgress())


class RoundProgress(TrainerCallback):
    """One notebook output per round: live step and losses, then the table of evaluations."""

    replaces_progress = True

    def __init__(self):
        self.handle, self.started, self.shown_at = None, None, 0.0
        self.rows: list[tuple[int, float | None, float]] = []  # step, last train loss, eval loss
        self.train_loss: float | None = None
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
        left = f", ~{elapsed / step * (total - step):.0f} s left" if 0 < step < total else ""
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
        lines += [f"{step:>6}  {'-' if train is None else f'{train:.4f}':>10}  {evaluated:>9.4f}"
                  for step, train, evaluated in rows]
        return "\n".join([head, *lines])

    def _show(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.shown_at < 0.5:  # a redraw per step would flood a fast CPU round
            return
        self.shown_at = now
        from IPython.display import display

        if self.handle is None:
            self.handle = display({"text/plain": text}, raw=True, display_id=True)
        else:
            self.handle.update({"text/plain": text}, raw=True)
