"""Quiet notebooks: ftlab's warnings shown once, in one line; other libraries' noise off inside its calls.

A chapter's output should hold the numbers it explains. Four kinds of noise buried them:

- ``datasets`` draws a progress bar for every ``map`` and ``filter`` (ftlab's chat template, then TRL's
  labels, truncation and masking passes: eight bars a round, each over in a fraction of a second), and
  transformers one for loading the tiny model's weights. ``quiet_libraries`` turns them off for the
  block it guards (and, if asked, transformers' log lines below errors) and restores the user's own
  settings afterwards, whatever they were.
- Log lines a learner can do nothing about (``KNOWN_LOG_LINES``: transformers saying a checkpoint
  folder in /tmp has unreliable modification times, when it sorts checkpoints) are dropped by
  ``known_lines_off`` for the block it guards; every other line of the same loggers still passes.
- A Python warning prints the file, the line number and the source line of the call, and ftlab used to
  print the same problem once more itself. ``warn`` issues a normal warning (filters, ``pytest.warns``
  and ``-W error`` see it as any other) whose display is one line: ``⚠ message``.
- A finished progress bar stays in the notebook, frozen, long after it told anything. ftlab's own loops
  (generation, perplexity, token lengths, near copies) report through ``Progress``, written by ``Line``: in a notebook
  one output updated in place, elsewhere one terminal line on stderr rewritten in place; cleared when
  the loop ends (or left as a one-line summary when it took ``LONG_S`` or more).

One rule decides whether a loop shows progress at all, by time rather than by its count of batches or
rows: ``worth_showing``, true once the loop has run ``SHOW_AFTER_S`` seconds or its first items say the
whole loop will. A loop over in a blink shows nothing; so does one whose single item is slow (no timer
thread: the pace is known only after an item ends).

Light on purpose: the lab and the data modules import it without importing torch.
"""

from __future__ import annotations

import sys
import time
import warnings

SHOW_AFTER_S = 2.0  # "a step that takes more than a few seconds shows progress": a loop this long shows a line
LONG_S = 5.0  # a loop that took this long leaves a one-line summary of itself behind
REDRAW_S = 0.5  # a redraw per step would flood a notebook (and a terminal) on a fast CPU loop


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Colab, Kaggle, nbmake), where an output can be updated in place."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and "IPKernelApp" in getattr(shell, "config", {})


def worth_showing(elapsed: float, done: int = 0, total: int | None = None) -> bool:
    """Whether a loop ``elapsed`` seconds in, ``done`` of ``total`` items through, should show its progress.

    Yes once it has run ``SHOW_AFTER_S`` seconds, or as soon as its pace so far says the whole loop will.
    """
    if elapsed >= SHOW_AFTER_S:
        return True
    return bool(total and done) and elapsed / done * total >= SHOW_AFTER_S


def time_left(elapsed: float, done: int, total: int | None) -> str:
    """``", ~12 s left"`` at the pace so far, or ``""`` before the first item and after the last."""
    return f", ~{elapsed / done * (total - done):.0f} s left" if total and 0 < done < total else ""


class Line:
    """One line of output rewritten in place: ``show(text)`` as things move, ``end(text)`` once (``""`` clears it).

    In a notebook: one display output, updated by id. In a terminal: one line on ``file`` (stderr), rewritten
    with a carriage return. Written to a file or a pipe (``ftlab train > log 2>&1``), where a rewrite would
    pile up: nothing while it runs, and ``end``'s summary as a plain line. ``show`` redraws at most every
    ``REDRAW_S`` seconds unless ``force``.
    """

    def __init__(self, file=None):
        self.file, self.notebook = file, in_notebook()
        self.handle, self.shown_at, self.width = None, 0.0, 0

    def due(self) -> bool:
        """Whether ``show`` would redraw now (a caller can skip building the text when not)."""
        return time.perf_counter() - self.shown_at >= REDRAW_S

    def show(self, text: str, force: bool = False) -> None:
        if not force and not self.due():
            return
        self.shown_at = time.perf_counter()
        if self.notebook:
            from IPython.display import display

            if self.handle is None:
                self.handle = display({"text/plain": text}, raw=True, display_id=True)
            else:
                self.handle.update({"text/plain": text}, raw=True)
        elif self._in_place():
            self._write("\r" + text.ljust(self.width))
            self.width = len(text)

    def end(self, text: str = "") -> None:
        """The last state: ``text`` stays (a summary), or nothing if it is empty."""
        if self.notebook:
            if self.handle is not None or text:
                self.show(text, force=True)
        elif not self._in_place():
            if text:
                self._write(f"{text}\n")
        elif self.width or text:
            self._write("\r" + " " * self.width + "\r" + (f"{text}\n" if text else ""))
        self.handle, self.width = None, 0

    def _in_place(self) -> bool:
        out = self.file or sys.stderr
        return bool(getattr(out, "isatty", lambda: False)())

    def _write(self, text: str) -> None:
        out = self.file or sys.stderr  # looked up when written: a redirected stderr is honoured
        out.write(text)
        out.flush()


def warn(message: str, category: type[Warning] = UserWarning, stacklevel: int = 2) -> None:
    """``warnings.warn``, shown as ``⚠ message`` on one line (no file, line number or source line)."""
    original = warnings.formatwarning
    warnings.formatwarning = _one_line
    try:
        warnings.warn(message, category, stacklevel=stacklevel + 1)
    finally:
        warnings.formatwarning = original


def _one_line(message, category, filename, lineno, line=None) -> str:
    return f"⚠ {message}\n"


class Progress:
    """How far a loop inside an ftlab call is: ``update(n)`` as it goes, ``close()`` (or ``with``) at the end.

    Shown (on a ``Line``) only once ``worth_showing`` says so; ``show=False`` never shows it.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "it", show: bool = True):
        self.total, self.desc, self.unit, self.n, self.show = total, desc, unit, 0, show
        self.started, self.line = time.perf_counter(), None
        self._draw()

    def _text(self, done: bool = False) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        took = time.perf_counter() - self.started
        left = "" if done else time_left(took, self.n, self.total)
        return f"{self.desc}: {self.n}{of} {self.unit} {'in' if done else 'after'} {took:.0f} s{left}"

    def _draw(self) -> None:
        finished = self.total is not None and self.n >= self.total  # a line shown only to be cleared tells nothing
        if self.line is None and self.show and not finished and worth_showing(time.perf_counter() - self.started,
                                                                               self.n, self.total):
            self.line = Line()
            self.line.show(self._text(), force=True)
        elif self.line is not None and self.line.due():
            self.line.show(self._text())

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def close(self) -> None:
        if self.line is not None:
            long = time.perf_counter() - self.started >= LONG_S
            self.line.end(self._text(done=True) if long else "")
        self.line, self.show = None, False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items, desc: str, show: bool = True, unit: str = "it"):
    """``for item in track(items, "generating"):`` with ``Progress`` shown (``show=False``: nothing)."""
    with Progress(len(items) if hasattr(items, "__len__") else None, desc, unit, show) as progress:
        for item in items:
            yield item
            progress.update()
