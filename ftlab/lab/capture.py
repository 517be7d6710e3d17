"""Around a lab round as it runs: its printed output kept in its folder, and the tracker it reports to.

- ``capture_output`` tees stdout and stderr into ``stdout.log`` / ``stderr.log``, secrets scrubbed,
  a progress bar kept at its last state rather than at every redraw; ``echo=False`` keeps them in the
  log files only (a quiet round: the notebook shows its verdict, the folder keeps the rest).
- ``tracker_env`` sets up TensorBoard / wandb / trackio when asked, without a login prompt.
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from ftlab.config import ConfigError


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


# ------------------------------------------------------------------------------------------ trackers
@contextmanager
def tracker_env(report_to: str):
    """TensorBoard, wandb or trackio when the config asks; never a login prompt (it blocked Kaggle runs).

    wandb logs online when a key is found (``WANDB_API_KEY`` or ``wandb login`` earlier), otherwise
    offline into ./wandb (``wandb sync`` uploads it later). TensorBoard writes into the round folder.
    """
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
        return netrc.netrc().authenticators(host) is not None
    except Exception:  # no ~/.netrc or an unreadable one: not logged in
        return False
