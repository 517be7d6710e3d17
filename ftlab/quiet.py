"""Quiet notebooks: ftlab's warnings shown once, in one line; other libraries' progress bars off inside its calls.

A chapter's output should hold the numbers it explains. Two kinds of noise buried them:

- ``datasets`` draws a progress bar for every ``map`` and ``filter`` (ftlab's chat template, then TRL's
  labels, truncation and masking passes: eight bars a round, each over in a fraction of a second), and
  transformers one for loading the tiny model's weights. ``quiet_libraries`` turns them off for the
  block it guards and restores the user's own setting afterwards, whatever it was.
- A Python warning prints the file, the line number and the source line of the call, and ftlab used to
  print the same problem once more itself. ``warn`` issues a normal warning (filters, ``pytest.warns``
  and ``-W error`` see it as any other) whose display is one line: ``⚠ message``.
- A finished progress bar stays in the notebook, frozen, long after it told anything. ftlab's own loops
  (generation, perplexity, templating) report through ``Progress``: in a notebook one line updated in
  place that is cleared when the loop ends (or left as a one-line summary when it took ``LONG_S`` or
  more); elsewhere a tqdm bar on stderr that is cleared too.

Light on purpose: the lab and the data modules import it without importing torch.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings

LONG_S = 5.0  # a loop that took this long leaves a one-line summary of itself behind


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Colab, Kaggle, nbmake), where an output can be updated in place."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and "IPKernelApp" in getattr(shell, "config", {})


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


@contextlib.contextmanager
def quiet_libraries(datasets_bars: bool = True, transformers_bars: bool = False):
    """Inside the block: no ``datasets`` progress bars (and, if asked, none from transformers).

    The settings found on entry come back on exit, so a learner who turned bars on or off keeps it.
    """
    restore = []
    if datasets_bars:
        import datasets

        if datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            restore.append(datasets.enable_progress_bars)
    if transformers_bars:
        from transformers.utils import logging

        if logging.is_progress_bar_enabled():
            logging.disable_progress_bar()
            restore.append(logging.enable_progress_bar)
    try:
        yield
    finally:
        for undo in restore:
            undo()


class Progress:
    """How far a loop inside an ftlab call is: ``update(n)`` as it goes, ``close()`` (or ``with``) at the end."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", show: bool = True):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.started, self.shown_at, self.handle, self.bar = time.perf_counter(), 0.0, None, None
        if show and in_notebook():
            from IPython.display import display

            self.handle = display({"text/plain": self._line()}, raw=True, display_id=True)
        elif show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)

    def _line(self, done: bool = False) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        took = time.perf_counter() - self.started
        return f"{self.desc}: {self.n}{of} {self.unit} {'in' if done else 'after'} {took:.0f} s"

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.handle is not None and time.perf_counter() - self.shown_at >= 0.5:
            self.shown_at = time.perf_counter()
            self.handle.update({"text/plain": self._line()}, raw=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.handle is not None:
            long = time.perf_counter() - self.started >= LONG_S
            self.handle.update({"text/plain": self._line(done=True) if long else ""}, raw=True)
        self.handle = self.bar = None

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
