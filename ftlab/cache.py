"""Where ftlab keeps what it builds (the tiny model, dequantized GGUF models), and how big a saved model is.

``$FTLAB_CACHE``, or ``~/.cache/ftlab``. ``saved_parameters(folder)`` counts a saved model's parameters
from its safetensors headers alone, so a banner can state the size it measured without loading torch.
``atomic_folder(target)`` is the one way ftlab writes a folder that must appear whole or not at all (a
model in the cache, ``save_atomically``; a merged model, ``ftlab.merge``): a crash never leaves half of one.
Imports only the standard library and ``ftlab.streamed`` (itself standard library only): every module may import it.
"""

from __future__ import annotations

import glob
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftlab.streamed import read_header


def cache_root() -> Path:
    """Where ftlab keeps what it builds: ``$FTLAB_CACHE`` or ~/.cache/ftlab."""
    return Path(os.environ.get("FTLAB_CACHE") or Path.home() / ".cache" / "ftlab")


def saved_parameters(folder) -> int | None:
    """The number of parameters in the ``*.safetensors`` files of ``folder`` (None if there are none).

    Read from each file's header (``ftlab.streamed.read_header``: every tensor's shape), not from the weights.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    return sum(math.prod(t["shape"]) for path in files for t in read_header(path).values())


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


def save_atomically(target: Path, model, tokenizer, notes: dict[str, str]) -> Path:
    """Save ``model`` and ``tokenizer`` (plus small text ``notes`` files) as the folder ``target``, atomically.

    Everything is written into a staging folder beside ``target`` and renamed at the end (``atomic_folder``):
    a crash or a kill leaves either no folder or a complete one, never half a model that later loads as garbage.
    """
    with atomic_folder(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for name, text in notes.items():
            (staging / name).write_text(text)
    return Path(target)
