"""Where a round's tracker writes: TensorBoard, wandb and trackio files inside the round's own folder.

A learner looking for a round's curves looks where the round is. Left alone, transformers' TensorBoard
callback wrote into ``./runs`` of the working directory: ``train_round`` evaluates before training, and an
evaluation logged before ``on_train_begin`` opens the writer with no folder, which TensorBoard's
``SummaryWriter`` takes as ``./runs/<date>_<host>``. The trackers each read a variable for their folder;
``tracker_env`` sets it for the round and restores it after:

- TensorBoard: ``TENSORBOARD_LOGGING_DIR`` (read when the trainer builds its callback) -> ``<round>/tensorboard``;
- wandb: ``WANDB_DIR`` -> the round's folder, where wandb writes ``wandb/`` (its runs, offline ones included);
- trackio: ``TRACKIO_DIR`` -> ``<round>/trackio``. trackio reads the variable once, when first imported,
  and its modules keep the path as a name of their own: a trackio already imported is pointed at the
  round's folder too, name by name, and pointed back afterwards.

It also keeps wandb from prompting for a login (a prompt blocked Kaggle runs): online when a key is found,
otherwise offline into the round's folder (``wandb sync`` uploads it later).
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from ftlab.config import ConfigError

TRACKERS = {  # report_to -> (the variable naming its folder, the folder's name inside the round)
    "tensorboard": ("TENSORBOARD_LOGGING_DIR", "tensorboard"),
    "wandb": ("WANDB_DIR", "wandb"),
    "trackio": ("TRACKIO_DIR", "trackio"),
}
HOW_TO_LOOK = {  # report_to -> how a learner opens the files, given the folder
    "tensorboard": "tensorboard --logdir {folder}",
    "wandb": "wandb sync {folder}/offline-run-*  (uploads an offline run)",
    "trackio": "TRACKIO_DIR={folder} trackio show",
}


def tracker_folder(report_to: str, round_folder) -> Path | None:
    """The folder inside ``round_folder`` that the tracker ``report_to`` writes into (None for ``'none'``)."""
    if report_to not in TRACKERS:
        return None
    return Path(round_folder) / TRACKERS[report_to][1]


def how_to_look(report_to: str, folder) -> str:
    """The command that opens a tracker's files in ``folder``: ``tensorboard --logdir lab/round-003/tensorboard``."""
    return HOW_TO_LOOK[report_to].format(folder=folder)


@contextmanager
def tracker_env(report_to: str, round_folder=None):
    """Inside the block, the tracker ``report_to`` writes into ``round_folder`` (if given) and never prompts.

    Refuses a tracker whose package is missing, with the install line. Yields the tracker's folder (or None).
    """
    modules = ("tensorboard", "tensorboardX") if report_to == "tensorboard" else (report_to,)
    if report_to != "none" and all(importlib.util.find_spec(m) is None for m in modules):
        raise ConfigError(f"RoundConfig.report_to = {report_to!r} needs the {report_to} package: "
                          f"pip install {report_to} (or report_to='none')")
    folder = tracker_folder(report_to, round_folder) if round_folder is not None else None
    variables = {"WANDB_MODE": None, "WANDB_PROJECT": None}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        # wandb makes its own wandb/ inside the folder it is given
        variables[TRACKERS[report_to][0]] = str((folder.parent if report_to == "wandb" else folder).resolve())
    saved = {name: os.environ.get(name) for name in variables}
    for name, value in variables.items():
        if value is not None:
            os.environ[name] = value
    if report_to == "wandb":
        logged_in = bool(os.environ.get("WANDB_API_KEY")) or _has_netrc_login("api.wandb.ai")
        os.environ["WANDB_MODE"] = "online" if logged_in else "offline"
        os.environ.setdefault("WANDB_PROJECT", "ftlab")
        if not logged_in:
            print(f"wandb: no API key found, so logging offline to {folder or './wandb'} (no login prompt). "
                  "Upload later with `wandb sync`, or set WANDB_API_KEY before training.")
    repointed = _repoint_trackio(Path(variables["TRACKIO_DIR"])) if report_to == "trackio" and folder else []
    try:
        yield folder
    finally:
        for module, name, value in repointed:
            setattr(module, name, value)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _repoint_trackio(folder: Path) -> list:
    """Point an already imported trackio at ``folder``: each of its modules holds ``TRACKIO_DIR`` (and
    ``MEDIA_DIR`` below it) as its own name, read from the variable at the first import. Returns what to
    put back: (module, name, old value)."""
    utils = sys.modules.get("trackio.utils")
    old = getattr(utils, "TRACKIO_DIR", None)
    if old is None:
        return []  # not imported yet: it will read TRACKIO_DIR, set above
    new = {"TRACKIO_DIR": folder, "MEDIA_DIR": folder / "media"}
    olds = {"TRACKIO_DIR": old, "MEDIA_DIR": Path(old) / "media"}
    changed = []
    for module_name, module in list(sys.modules.items()):
        if module_name != "trackio" and not module_name.startswith("trackio."):
            continue
        for name, value in new.items():
            if getattr(module, name, None) == olds[name]:
                changed.append((module, name, getattr(module, name)))
                setattr(module, name, value)
    return changed


def _has_netrc_login(host: str) -> bool:
    try:
        return netrc.netrc().authenticators(host) is not None
    except Exception:  # no ~/.netrc or an unreadable one: not logged in
        return False
