"""Safetensors read and written one tensor at a time, and the memory a process holds (Linux counters).

A safetensors file is an 8-byte length, a JSON header (each tensor's dtype, shape and byte range), then
the tensors' bytes. Reading one tensor is a seek and a read into a fresh buffer (no memory map, whose
touched pages would count in the resident set); writing a file whose header is known in advance lets a
merge write each tensor as soon as it is computed. ``reset_peak_rss`` / ``peak_rss`` read Linux's
per-process peak (VmHWM), so a step's own peak can be measured inside a running notebook.
Nothing read is trusted unchecked: the header's byte ranges against each tensor's dtype and shape and
against the file's size, and every tensor against the bytes actually read; a short file raises
``ftlab.files.faults.CutShort`` ("FILE is cut short: N of M bytes") instead of merging garbage.

The one dtype table of ftlab lives here (``DTYPE_TABLE``): a safetensors code's size and torch name, and
``PRECISIONS`` for ftlab's own names (fp16, bf16, fp32); ``torch_dtype`` and ``dtype_code`` read both ways.
Standard library only at import (torch is imported when a tensor is made), so ``ftlab.files.cache`` can use it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from ftlab.files.faults import REFETCH, CutShort, DamagedFile

# safetensors dtype code: (bytes per number, torch's name for it)
DTYPE_TABLE = {"F64": (8, "float64"), "F32": (4, "float32"), "F16": (2, "float16"), "BF16": (2, "bfloat16"),
               "I64": (8, "int64"), "I32": (4, "int32"), "I16": (2, "int16"), "I8": (1, "int8"), "U8": (1, "uint8"),
               "BOOL": (1, "bool")}
DTYPES = {code: size for code, (size, _) in DTYPE_TABLE.items()}  # bytes per number
PRECISIONS = {"fp16": "F16", "bf16": "BF16", "fp32": "F32"}  # ftlab's precision names (config, merge) -> code


def torch_dtype(code: str):
    """The torch dtype of a safetensors code ("F16") or of one of ftlab's precisions ("fp16")."""
    import torch

    return getattr(torch, DTYPE_TABLE[PRECISIONS.get(code, code)][1])


def dtype_code(dtype) -> str:
    """The safetensors code of a torch dtype (``torch.float16`` -> "F16")."""
    return {torch_name: code for code, (_, torch_name) in DTYPE_TABLE.items()}[str(dtype).removeprefix("torch.")]


def read_header(path: Path) -> dict:
    """A safetensors file's header: {name: {"dtype", "shape", "data_offsets"}} (read from its first bytes).

    Checked against the file before anything trusts it: each tensor's byte range must match its dtype and
    shape, and the file must hold every byte the header promises (else ``CutShort``: "FILE is cut short: N
    of M bytes", e.g. a copy to Drive that stopped early).
    """
    with open(path, "rb") as f:
        length = _header_length(f, path)
        size = os.fstat(f.fileno()).st_size
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DamagedFile(f"{path} is not a safetensors file: its header is not valid JSON ({error}). "
                              f"{REFETCH}", path) from None
    header.pop("__metadata__", None)
    end = 8 + length + max((_byte_range(path, name, info)[1] for name, info in header.items()), default=0)
    if end > size:
        raise CutShort(path, size, end)
    return header


def _byte_range(path, name: str, info) -> tuple[int, int]:
    """A tensor's (begin, end) in the data section, checked against its dtype and shape."""
    try:
        begin, end = info["data_offsets"]
        expected = numel(info["shape"]) * DTYPES[info["dtype"]]
    except (KeyError, TypeError, ValueError):
        raise DamagedFile(f"{path} is damaged: its header's entry for {name!r} is not a tensor's dtype, shape and "
                          f"byte range ({info!r}). {REFETCH}", path) from None
    if not 0 <= begin <= end or end - begin != expected:
        raise DamagedFile(f"{path} is damaged: its header gives {name!r} bytes {begin}-{end}, but a {info['dtype']} "
                          f"tensor of shape {info['shape']} takes {expected:,} bytes. {REFETCH}", path)
    return begin, end


def data_start(path: Path) -> int:
    """Where a safetensors file's tensor bytes begin (``data_offsets`` count from here)."""
    with open(path, "rb") as f:
        return 8 + _header_length(f, path)


def _header_length(f, path) -> int:
    raw = f.read(8)
    if len(raw) < 8:
        raise CutShort(path, len(raw), 8, f"Not even a safetensors header's length is there. {REFETCH}")
    length = struct.unpack("<Q", raw)[0]
    size = os.fstat(f.fileno()).st_size
    if length > size - 8:  # e.g. a Git LFS pointer: a few lines of text where the weights should be
        raise DamagedFile(f"{path} is not a safetensors file: its first 8 bytes announce a header of {length:,} bytes "
                          f"in a file of {size:,} (a Git LFS pointer, or a cut-off download? fetch or save it again)",
                          path)
    return length


def read_tensor(f, info: dict, data_start: int):
    """One tensor of an open safetensors file, read into its own buffer (no memory map: RSS stays honest).

    A file that ends before the tensor does (cut while it was being read) raises ``CutShort``.
    """
    import torch

    begin, end = info["data_offsets"]
    f.seek(data_start + begin)
    buffer = torch.empty(end - begin, dtype=torch.uint8)
    got = f.readinto(memoryview(buffer.numpy())) or 0
    if got < end - begin:
        raise CutShort(f.name, data_start + begin + got, data_start + end)
    return buffer.view(torch_dtype(info["dtype"])).reshape(info["shape"])


def read_tensors(path: Path) -> dict:
    """Every tensor of a small safetensors file (an adapter's), each checked as ``read_tensor`` checks it."""
    header, start = read_header(path), data_start(path)
    with open(path, "rb") as f:
        return {name: read_tensor(f, info, start) for name, info in header.items()}


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


