"""A round's folder in the lab book: what is written there, how, and what never may be.

Every round lives in ``<lab>/round-NNN/``. Its record, ``round.json``, holds the knobs, versions,
hardware, seed, data fingerprints, template, status, times, metrics and the failure with a mentor's
advice; beside it ``log.jsonl`` (one line per logging step, flushed and fsynced as it happens),
``stdout.log`` / ``stderr.log``, ``samples.json``, ``traceback.txt``, the kept data, the trainer's
``checkpoint-N`` folders and the ``adapter``.

Writes are atomic: a temp file in the same folder is fsynced, then ``os.replace``d over the old one,
so a kill -9 or a Colab disconnect leaves either the old record or the new one, never half of each.
Secrets are scrubbed from everything recorded: values of environment variables named like tokens,
keys, secrets or passwords, the stored Hub token, and strings shaped like Hub or API tokens.
Only the standard library here: nothing in storage loads a model or reads data formats, so
``ftlab runs`` reads a lab without torch.
"""

from __future__ import annotations

import json
import netrc
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from ftlab.files.atomic import atomic_write_json, atomic_write_text, ensure_folder, jsonable  # noqa: F401 - the lab's writers

RECORD = "round.json"
LOG = "log.jsonl"


def now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


# ------------------------------------------------------------------------------------------ secrets
SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH)(_|$)", re.IGNORECASE)
SECRET_SHAPES = [re.compile(p) for p in (r"hf_[A-Za-z0-9]{10,}", r"sk-[A-Za-z0-9_-]{20,}",
                                         r"gh[pousr]_[A-Za-z0-9]{20,}", r"wandb_v1_[A-Za-z0-9_]{20,}")]
HIDDEN = "[secret]"


def secret_values() -> list[str]:
    """Values that must never be written: secret-named environment values and stored logins."""
    # Short values ("1", "true") would blank out ordinary words everywhere; real secrets are long.
    values = {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8}
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    token_file = Path(os.environ.get("HF_TOKEN_PATH", hf_home / "token"))
    try:
        values.add(token_file.read_text().strip())
    except OSError:
        pass
    try:
        login = netrc.netrc().authenticators("api.wandb.ai")
        if login and login[2]:
            values.add(login[2])
    except Exception:  # no ~/.netrc, or one netrc cannot parse: nothing to hide from it
        pass
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


class Scrubber:
    """Replaces every secret in a text (or in the strings of a dict/list) with ``[secret]``."""

    def __init__(self):
        self.values = secret_values()

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, HIDDEN)
        for shape in SECRET_SHAPES:
            text = shape.sub(HIDDEN, text)
        return text

    def __call__(self, obj):
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self(k) if isinstance(k, str) else k: self(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj


def append_jsonl(path: Path, obj) -> None:
    """Append one line with a single write, then fsync: a kill leaves whole lines only."""
    line = (json.dumps(jsonable(obj), ensure_ascii=False, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    """The lines of a JSONL file; a torn last line (power loss mid-write) is skipped, not fatal."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_rows(path: Path, rows: list[dict], scrub: Scrubber) -> None:
    text = "".join(scrub.text(json.dumps(jsonable(r), ensure_ascii=False)) + "\n" for r in rows)
    atomic_write_text(path, text)


# ------------------------------------------------------------------------------------------ layout
def round_folder(root: Path, number: int) -> Path:
    return Path(root) / f"round-{number:03d}"


def lab_folder(root: Path) -> Path:
    """The lab's folder, made if absent: ftlab only adds round folders to it, never replaces anything there;
    a file of that name is refused (``ftlab.files.atomic.ensure_folder``), before anything is loaded."""
    return ensure_folder(root, "lab")


def new_round_folder(root: Path) -> tuple[int, Path]:
    """The next free sequential id and its folder; mkdir is atomic, so two processes never share one."""
    root = lab_folder(root)
    numbers = [int(p.name.split("-")[1]) for p in root.glob("round-*") if p.name.split("-")[1].isdigit()]
    number = max(numbers, default=0) + 1
    while True:
        try:
            round_folder(root, number).mkdir()
            return number, round_folder(root, number)
        except FileExistsError:
            number += 1


def round_folders(root: Path) -> list[Path]:
    return sorted((p for p in Path(root).glob("round-*") if (p / RECORD).exists()),
                  key=lambda p: int(p.name.split("-")[1]))


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, newest first: the trainer writes trainer_state.json last."""
    found = []
    for path in Path(folder).glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue  # cut off while being written
        found.append(path)
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)
