"""Around a lab round as it runs: its printed output kept in its folder.

``capture_output`` tees stdout and stderr into ``stdout.log`` / ``stderr.log``, secrets scrubbed, a progress
bar kept at its last state rather than at every redraw; ``echo=False`` keeps them in the log files only (a quiet
round: the notebook shows its verdict, the folder keeps the rest). (The tracker a round reports to writes into the
round's folder too: ``ftlab.round.trackers``.)
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from pathlib import Path


class _Tee:
    """Writes through to the notebook / terminal and, line by line and scrubbed, to a log file."""

    def __init__(self, original, path: Path, scrub, echo: bool = True):
        self.original, self.scrub, self.pending, self.echo = original, scrub, "", echo
        self.file = open(path, "a", encoding="utf-8")

    def write(self, text: str) -> int:
        if self.echo:
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
def capture_output(folder: Path, scrub, echo: bool = True):
    """Tee ``sys.stdout`` and ``sys.stderr`` into ``stdout.log`` / ``stderr.log`` of ``folder``; yields the
    stdout it replaced, where a quiet round (``echo=False``: the logs only) still prints its verdict."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = _Tee(out, Path(folder) / "stdout.log", scrub, echo)
    sys.stderr = _Tee(err, Path(folder) / "stderr.log", scrub, echo)
    try:
        yield out
    finally:
        tees = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        for tee in tees:
            if isinstance(tee, _Tee):
                tee.close()
