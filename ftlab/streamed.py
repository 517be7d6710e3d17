"""Safetensors read and written one tensor at a time, and the memory a process holds (Linux counters).

A safetensors file is an 8-byte length, a JSON header (each tensor's dtype, shape and byte range), then
the tensors' bytes. Reading one tensor is a seek and a read into a fresh buffer (no memory map, whose
touched pages would count in the resident set); writing a file whose header is known in advance lets a
merge write each tensor as soon as it is computed. ``reset_peak_rss`` / ``peak_rss`` read Linux's
per-process peak (VmHWM), so a step's own peak can be measured inside a running notebook.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_header(path: Path) -> dict:
    """A safetensors file's header: {name: {"dtype", "shape", "data_offsets"}} (read from its first bytes)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def read_tensor(f, info: dict, data_start: int):
    """One tensor of an open safetensors file, read into its own buffer (no memory map: RSS stays honest)."""
    import torch

    begin, end = info["data_offsets"]
    f.seek(data_start + begin)
    buffer = torch.empty(end - begin, dtype=torch.uint8)
    f.readinto(memoryview(buffer.numpy()))
    return buffer.view(torch_dtype(info["dtype"])).reshape(info["shape"])


def data_start(path: Path) -> int:
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


def give_back_freed_memory() -> None:
    """Return freed heap to the OS (glibc keeps medium-sized blocks otherwise); a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def torch_dtype(code: str):
    import torch

    return {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
            "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
            "BOOL": torch.bool}[code]


def write_header(f, entries: list[tuple[str, str, list[int]]]) -> None:
    """Write a safetensors header for tensors that will follow in this order (8-byte aligned, as the library does)."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in entries:
        size = numel(shape) * DTYPES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    f.write(struct.pack("<Q", len(text)) + text)


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def available_ram() -> int | None:
    """Bytes of RAM the kernel says a new allocation can get (Linux ``MemAvailable``), or None."""
    try:
        found = re.search(r"MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        return int(found.group(1)) * 1024 if found else None
    except OSError:
        return None


def rss_kib(field: str) -> int | None:
    try:
        found = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
        return int(found.group(1)) if found else None
    except OSError:
        return None


def reset_peak_rss() -> int | None:
    """Reset Linux's peak-RSS counter (VmHWM) to the current RSS, and return that RSS in bytes (None: not Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    now = rss_kib("VmRSS")
    return now * 1024 if now is not None else None


def peak_rss() -> int:
    return (rss_kib("VmHWM") or 0) * 1024
