"""Where ftlab keeps what it builds (the tiny model, dequantized GGUF models), and how big a saved model is.

``$FTLAB_CACHE``, or ``~/.cache/ftlab``. ``saved_parameters(folder)`` counts a saved model's parameters
from its safetensors headers alone, so a banner can state the size it measured without loading torch.
Standard library only; every module may import it.
"""

from __future__ import annotations

import json
import math
import os
import struct
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
