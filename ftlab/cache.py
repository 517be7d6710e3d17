"""Where ftlab keeps what it builds (the tiny model, dequantized GGUF models), and how big a saved model is.

``$FTLAB_CACHE``, or ``~/.cache/ftlab``. ``saved_parameters(folder)`` counts a saved model's parameters
from its safetensors headers alone, so a banner can state the size it measured without loading torch.
``save_atomically`` writes a built model into the cache so that a crash never leaves half of one.
Standard library only; every module may import it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from pathlib import Path


def cache_root() -> Path:
    """Where ftlab keeps what it builds: ``$FTLAB_CACHE`` or ~/.cache/ftlab."""
    return Path(os.environ.get("FTLAB_CACHE") or Path.home() / ".cache" / "ftlab")


def saved_parameters(folder) -> int | None:
    """The number of parameters in the ``*.safetensors`` files of ``folder`` (None if there are none).

    A safetensors file starts with an 8-byte little-endian length and a JSON header giving every
    tensor's shape: the count is read from there, without reading the weights.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def save_atomically(target: Path, model, tokenizer, notes: dict[str, str]) -> Path:
    """Save ``model`` and ``tokenizer`` (plus small text ``notes`` files) as the folder ``target``, atomically.

    Everything is written into a staging folder beside ``target`` and renamed at the end: a crash or a
    kill leaves either no folder or a complete one, never half a model that later loads as garbage.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from the machine's other users
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for name, text in notes.items():
        (staging / name).write_text(text)
    try:
        staging.rename(target)
    except OSError:  # another process finished first: its copy is as good as ours
        shutil.rmtree(staging, ignore_errors=True)
    return target
