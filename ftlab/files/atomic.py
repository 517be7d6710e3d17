"""Writes that appear whole or not at all, and never over what ftlab did not write: a folder, a file, a record.

``atomic_folder(target)`` is the one way ftlab writes a folder that must appear whole or not at all (a
model in the cache, ``ftlab.files.cache.save_atomically``; a merged model, ``ftlab.export.merge``; a saved
adapter, ``ftlab.export.adapter``): it is built under a staging name beside the target and renamed into place,
so a crash never leaves half of one. ``atomic_file`` does the same for one large file (a GGUF), and
``atomic_write_text`` / ``atomic_write_json`` for a small one (a lab's ``round.json``, an adapter's
``ftlab_export.json``): written under a temporary name, flushed, then renamed over the old one. A write
the disk refuses (full, file too large, over quota) removes its partial copy and raises ``WriteFailed``.

The one rule for outputs (``claim``): an output path that exists is written over only if it is ftlab's own
earlier output of the same kind and holds nothing else, or if the caller asked to replace it; otherwise
``OutputInUse`` names what it holds and nothing is touched. A folder written with a ``kind`` keeps the list
of what ftlab wrote in it (``MANIFEST``), which is how a later write recognises it; a file's writer says
how to recognise its own files (``ours=``). ``ensure_folder`` is the same rule for a folder ftlab only adds
to (a lab): it may exist, but not as a file.
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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ftlab.files.faults import OutputInUse, WriteFailed, refused_by_disk

MANIFEST = ".ftlab-output.json"  # in a folder ftlab wrote: its kind and the files it wrote


# ------------------------------------------------------------------------------------------ the rule
def foreign_files(target: Path, kind: str) -> list[str] | None:
    """What in the folder ``target`` ftlab did not write as a ``kind``: [] for its own earlier output (or an
    empty folder), the names it did not write beside one, or None when nothing there is ftlab's ``kind``."""
    names = {p.relative_to(target).as_posix() for p in target.rglob("*") if not p.is_dir()} - {MANIFEST}
    if not names and not any(target.iterdir()):
        return []
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        written, recorded_kind = set(manifest["files"]), manifest["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if recorded_kind != kind:
        return None
    return sorted(names - written)


def claim(target, kind: str, replace: bool = False, ours: Callable[[Path], bool] | None = None) -> bool:
    """May a writer of ``kind`` put its output at ``target``? True when something there will be replaced,
    False when nothing is there; ``OutputInUse`` (nothing touched) when what is there is not ftlab's own.

    A folder is ftlab's own when its ``MANIFEST`` says it is a ``kind`` and it holds nothing else (an empty
    folder is taken too: nothing in it is lost); a file when ``ours(target)`` says so. ``replace=True``: the
    caller asked to replace whatever is there.
    """
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return False
    if replace:
        return True
    if target.is_dir() and not target.is_symlink():
        foreign = foreign_files(target, kind)
        if foreign == []:
            return True
        raise OutputInUse(target, kind, foreign)
    if ours is not None and target.is_file() and ours(target):
        return True
    raise OutputInUse(target, kind)


def ensure_folder(path, what: str) -> Path:
    """The folder ``path``, made if absent; ``OutputInUse`` if something else (a file) has that name."""
    path = Path(path)
    if path.exists() and not path.is_dir() or path.is_symlink() and not path.exists():
        raise OutputInUse(path, what, fix=f"a {what} is a folder of its own: give the path of a folder, or of one "
                                          "that does not exist yet.")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------------------------------ folders
@contextmanager
def atomic_folder(target, replace: bool = False, kind: str | None = None) -> Iterator[Path]:
    """A staging folder beside ``target`` to write into; it becomes ``target`` in one rename when the block ends.

    If the block raises (or the process dies), ``target`` is as it was: absent, or the old folder untouched;
    the staging folder is removed, and a full disk is reported as ``WriteFailed``. A kill leaves it (hidden:
    ``.<name>.staging-<host>-<pid>-*``); the next ``atomic_folder`` for the same target removes those of this
    machine whose process is gone.

    With a ``kind`` ("merged model", "adapter"), the output rule holds (``claim``, checked before the block
    runs): an existing ``target`` is replaced only if it is ftlab's earlier ``kind`` holding nothing else, or
    ``replace`` is True; the new folder records what ftlab wrote in it (``MANIFEST``). Without a ``kind`` (the
    cache, where only ftlab writes): an existing ``target`` is kept if ``replace`` is False (another process
    finished first: its copy is as good as ours), or else replaced.

    What this does not cover: a kill in the instant between moving the old folder aside and renaming the new
    one in leaves ``target`` absent (both copies under staging names, removed by the next call), and nothing
    is flushed to disk (fsync): a power cut can still leave files that look whole and are not.
    """
    target = Path(target)
    if kind is not None:
        replace = claim(target, kind, replace)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from the machine's other users
    try:
        yield staging
        if kind is not None:
            _write_manifest(staging, kind)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if refused_by_disk(error):
            raise WriteFailed(target, error) from error
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


def _write_manifest(folder: Path, kind: str) -> None:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    record = {"written_by": "ftlab", "kind": kind, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": files}
    (folder / MANIFEST).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


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


@contextmanager
def atomic_file(target, kind: str, replace: bool = False, ours: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """A temporary path beside ``target`` to write one file into; it replaces ``target`` when the block ends.

    The output rule first (``claim``: an existing ``target`` is written over only if ``ours(target)`` or
    ``replace``); a block that raises leaves ``target`` as it was and removes the partial file (a full disk:
    ``WriteFailed``). ``target``'s folder is made if it does not exist.
    """
    target = Path(target)
    claim(target, kind, replace, ours)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield temp
        os.replace(temp, target)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if refused_by_disk(error):
            raise WriteFailed(target, error) from error
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` written to ``path`` whole or not at all: a failed write (a full disk) leaves the old file as it was."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if refused_by_disk(error):
            raise WriteFailed(path, error) from error
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(jsonable(obj), indent=1, ensure_ascii=False, allow_nan=False) + "\n")
