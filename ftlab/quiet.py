"""Quiet notebooks: ftlab's warnings shown once, in one line; other libraries' progress bars off inside its calls.

A chapter's output should hold the numbers it explains. Two kinds of noise buried them:

- ``datasets`` draws a progress bar for every ``map`` and ``filter`` (ftlab's chat template, then TRL's
  labels, truncation and masking passes: eight bars a round, each over in a fraction of a second), and
  transformers one for loading the tiny model's weights. ``quiet_libraries`` turns them off for the
  block it guards and restores the user's own setting afterwards, whatever it was.
- A Python warning prints the file, the line number and the source line of the call, and ftlab used to
  print the same problem once more itself. ``warn`` issues a normal warning (filters, ``pytest.warns``
  and ``-W error`` see it as any other) whose display is one line: ``⚠ message``.

Light on purpose: the lab and the data modules import it without importing torch.
"""

from __future__ import annotations

import contextlib
import warnings


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
