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
It also says what a round is made of: its rows as a list, their fingerprints, the template's text,
and the base model's name (to load it again for ``lab.resume`` and ``lab.rerun``).
This module imports nothing heavy: ``ftlab runs`` reads a lab without torch.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

RECORD = "round.json"
LOG = "log.jsonl"
STALE_AFTER_S = 15 * 60  # a round on another machine silent this long is taken as interrupted
HEARTBEAT_EVERY_S = 30


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
        import netrc

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


# ------------------------------------------------------------------------------------------ writing
def jsonable(obj):
    """JSON that every parser reads: NaN and infinity become the strings "nan" / "inf" / "-inf"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if hasattr(obj, "item"):  # numpy and torch scalars
        return jsonable(obj.item())
    return str(obj)


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(jsonable(obj), indent=1, ensure_ascii=False, allow_nan=False) + "\n")


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


# ------------------------------------------------------------------------------------------ capture
def versions() -> dict:
    from ftlab import __version__
    from ftlab.env import library_versions

    return {"ftlab": __version__, "python": sys.version.split()[0], **library_versions()}


def hardware() -> dict:
    import platform

    import psutil

    from ftlab.env import detect_platform

    found = {"platform": detect_platform(), "os": platform.platform(), "cpu_count": os.cpu_count(),
             "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "gpu": None}
    torch = sys.modules.get("torch")  # asked only when training has loaded it already
    if torch is not None and torch.cuda.is_available():
        from ftlab.env import gpu_info

        name, count, (major, minor), memory = gpu_info()
        found["gpu"] = {"name": name, "count": count, "capability": f"{major}.{minor}", "memory_gib": round(memory, 1)}
    return found


def this_process() -> dict:
    """Who is training: enough to tell later whether that process still exists."""
    import psutil

    return {"pid": os.getpid(), "host": socket.gethostname(), "boot_time": psutil.boot_time(),
            "started": psutil.Process().create_time()}


def process_alive(process: dict | None, heartbeat: str | None) -> bool:
    """Whether the process that wrote a "running" record is still at it.

    On this machine (same host, same boot) the pid must exist with the same start time (pids are
    reused). A round on another machine (a Colab VM gone after a disconnect, the lab on Drive) is
    judged by its heartbeat: silent for ``STALE_AFTER_S`` means interrupted.
    """
    import psutil

    if not process:
        return False
    same_machine = process.get("host") == socket.gethostname() and abs(
        process.get("boot_time", 0) - psutil.boot_time()) < 2
    if same_machine:
        try:
            return abs(psutil.Process(process["pid"]).create_time() - process["started"]) < 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
            return False
    silent = seconds_between(heartbeat, now())
    return silent is not None and silent < STALE_AFTER_S


# ------------------------------------------------------------------------------------------ layout
def round_folder(root: Path, number: int) -> Path:
    return Path(root) / f"round-{number:03d}"


def new_round_folder(root: Path) -> tuple[int, Path]:
    """The next free sequential id and its folder; mkdir is atomic, so two processes never share one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
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


# ------------------------------------------------------------------------------------------ what a round is made of
def as_rows(rows) -> list:
    """A list of rows from a list, a Dataset, a DataFrame, or a file / Hub id that ftlab.data.load reads."""
    if isinstance(rows, str | os.PathLike):
        from ftlab.data import load

        return load(rows, strict=False, quiet=True).to_list()
    if hasattr(rows, "to_list"):  # a datasets.Dataset
        return rows.to_list()
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
        return rows.to_dict("records")
    return list(rows)


def fingerprint(rows) -> str:
    """ftlab.data's order-independent fingerprint; a plain hash for anything it cannot read (bad rows)."""
    import hashlib
    import json

    if not isinstance(rows, str):
        try:
            from ftlab.data import fingerprint as data_fingerprint

            return data_fingerprint(rows)
        except Exception:  # rows that are not all dicts still need a fingerprint, to record the failure
            pass
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]


PROBE = [{"role": "user", "content": "{prompt}"}, {"role": "assistant", "content": "{answer}"}]


def template_text(tokenizer, template=None) -> tuple[str, str]:
    """The template's style and its text: the chat template's source, or a probe row rendered by it."""
    style = getattr(template, "style", "chat")
    if style == "chat":
        return style, getattr(tokenizer, "chat_template", None) or ""
    return style, template.training_text(PROBE)


def is_ftlab_template(style: str, text: str) -> bool:
    from ftlab.templates import CHAT_TEMPLATE

    return style == "chat" and text == CHAT_TEMPLATE


def base_model_name(path: str) -> str:
    """"tiny" for ftlab's tiny model (its cache path differs between machines), else the Hub id or path."""
    from ftlab import tiny

    return "tiny" if path and Path(path).name == tiny.cache_dir().name else path


def load_base(record: dict, config):
    """Load the recorded base model again (ftlab's tiny model, a Hub id or a local folder)."""
    import ftlab

    path = record.get("base_model_path")
    if record.get("base_model") == "tiny":
        where = path if path and (Path(path) / "config.json").exists() else None
        return ftlab.tiny_model(quantization=config.quantization, path=where)
    return ftlab.load_model(path or record["base_model"], quantization=config.quantization)
