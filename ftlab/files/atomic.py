"""Writes that appear whole or not at all: a folder, a text file, a JSON record.

``atomic_folder(target)`` is the one way ftlab writes a folder that must appear whole or not at all (a
model in the cache, ``ftlab.files.cache.save_atomically``; a merged model, ``ftlab.export.merge``): it is
built under a staging name beside the target and renamed into place, so a crash never leaves half of one.
``atomic_write_text`` / ``atomic_write_json`` do the same for one file (a lab's ``round.json``, an
adapter's ``ftlab_export.json``): written under a temporary name, flushed, then renamed over the old one.
Standard library only: every module may import it.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(target, replace: bool = False) -> Iterator[Path]:
    """A staging folder beside ``target`` to write into; it becomes ``target`` in one rename when the block ends.

    If the block raises (or the process dies), ``target`` is as it was: absent, or the old folder untouched;
    the staging folder is removed. A kill leaves it (hidden: ``.<name>.staging-<host>-<pid>-*``); the next
    ``atomic_folder`` for the same target removes those of this machine whose process is gone. At the end,
    an existing ``target`` is kept if ``replace`` is False (another process finished first: its copy is as
    good as ours), or else replaced: moved aside, the new folder renamed in, the old one deleted.

    What this does not cover: a kill in the instant between moving the old folder aside and renaming the new
    one in leaves ``target`` absent (both copies under staging names, removed by the next call), and nothing
    is flushed to disk (fsync): a power cut can still leave files that look whole and are not.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from the machine's other users
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if replace and (target.exists() or target.is_symlink()):
        old = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent)) / target.name
        target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:  # put the old folder back rather than leave nothing
            old.rename(target)
            shutil.rmtree(old.parent, ignore_errors=True)
        if replace or not target.exists():
            raise
        return  # not replacing: the folder another process renamed in first stays
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.staging-{socket.gethostname()}-{os.getpid()}-"


def remove_abandoned_staging(target: Path) -> list[Path]:
    """Delete the staging folders of ``target`` left by killed processes of this machine (a half merge is GBs)."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows instead of asking about it
        return []
    pattern = re.compile(re.escape(f".{target.name}.staging-{socket.gethostname()}-") + r"(\d+)-\w+")
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.staging-*"):
        found = pattern.fullmatch(path.name)
        if found and not _alive(int(found.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
