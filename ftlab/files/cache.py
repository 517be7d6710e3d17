"""Where ftlab keeps what it builds (the tiny model, dequantized GGUF models), and how big a saved model is.

``$FTLAB_CACHE``, or ``~/.cache/ftlab``. ``saved_parameters(folder)`` counts a saved model's parameters
from its safetensors headers alone, so a banner can state the size it measured without loading torch.
``atomic_folder(target)`` is the one way ftlab writes a folder that must appear whole or not at all (a
model in the cache, ``save_atomically``; a merged model, ``ftlab.export.merge``): a crash never leaves half of one.
Imports only the standard library and ``ftlab.files.safetensors`` (itself standard library only): every module may import it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ftlab.files.atomic import atomic_folder
from ftlab.files.safetensors import read_header


def cache_root() -> Path:
    """Where ftlab keeps what it builds: ``$FTLAB_CACHE`` or ~/.cache/ftlab."""
    return Path(os.environ.get("FTLAB_CACHE") or Path.home() / ".cache" / "ftlab")


def saved_parameters(folder) -> int | None:
    """The number of parameters in the ``*.safetensors`` files of ``folder`` (None if there are none).

    Read from each file's header (``ftlab.files.safetensors.read_header``: every tensor's shape), not from the weights.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    return sum(math.prod(t["shape"]) for path in files for t in read_header(path).values())


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
