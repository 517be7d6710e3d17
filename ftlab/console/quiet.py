"""Other libraries' noise off: their progress bars and log lines inside ftlab's calls, and login prompts.

A chapter's output should hold the numbers it explains. ``datasets`` draws a progress bar for every
``map`` and ``filter`` (ftlab's chat template, then TRL's labels, truncation and masking passes: eight
bars a round, each over in a fraction of a second), and transformers one for loading the tiny model's
weights. ``quiet_libraries`` turns them off for the block it guards (and, if asked, transformers' log
lines below errors) and restores the user's own settings afterwards, whatever they were. Log lines a
learner can do nothing about (``KNOWN_LOG_LINES``) are dropped by ``known_lines_off`` for the block it
guards; every other line of the same loggers still passes. ``quiet_known_noise`` keeps wandb from
prompting for a login (its prompt has blocked Kaggle runs) and silences warnings no learner can act on.

Light on purpose: nothing heavy is imported until a block asks for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

# logger -> the start of each line from it that tells a learner nothing they can act on
KNOWN_LOG_LINES = {
    # the trainer sorts its checkpoints by modification time; a fast round writes two in the same second
    "transformers.trainer_utils": ("mtime may not be reliable on this filesystem",),
}


@contextlib.contextmanager
def quiet_libraries(datasets_bars: bool = True, transformers_bars: bool = False, transformers_logs: bool = False):
    """Inside the block: no ``datasets`` progress bars (and, if asked, none from transformers, and none of
    transformers' log lines below errors).

    The settings found on entry come back on exit, so a learner who turned bars or logs on or off keeps it.
    """
    restore = []
    if datasets_bars:
        import datasets

        if datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            restore.append(datasets.enable_progress_bars)
    if transformers_bars:
        from transformers.utils import logging as transformers_logging

        if transformers_logging.is_progress_bar_enabled():
            transformers_logging.disable_progress_bar()
            restore.append(transformers_logging.enable_progress_bar)
    if transformers_logs:
        from transformers.utils import logging as transformers_logging

        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        restore.append(lambda: transformers_logging.set_verbosity(verbosity))
    try:
        yield
    finally:
        for undo in reversed(restore):
            undo()


class _KnownLines(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a call whose arguments do not fit its format: logging reports it, training goes on
            return True
        return not message.startswith(self.starts)


@contextlib.contextmanager
def known_lines_off():
    """Inside the block, the ``KNOWN_LOG_LINES`` are dropped; other lines of the same loggers pass as before.

    A filter on each logger, removed on exit (an error included): the user's levels and handlers are never touched.
    """
    added = [(logging.getLogger(name), _KnownLines(starts)) for name, starts in KNOWN_LOG_LINES.items()]
    for logger, known in added:
        logger.addFilter(known)
    try:
        yield
    finally:
        for logger, known in added:
            logger.removeFilter(known)


def quiet_known_noise() -> None:
    """Silence what only confuses a learner: login prompts and warnings about nothing they can change."""
    # A preinstalled wandb asks for a login inside Trainer and blocks a Kaggle run; ftlab reports to no
    # tracker unless asked, and these make sure nothing prompts if one is asked for later.
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # bitsandbytes on a CPU looks for an optional kernels package; transformers' own Trainer still calls
    # a helper it has renamed. Neither is the learner's to fix.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # PEFT looks the base model up on the Hub when saving an adapter; offline it can only say it could not
    warnings.filterwarnings("ignore", message="Could not find a config file in", category=UserWarning)
