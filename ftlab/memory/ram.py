"""The memory this process holds and the machine has free (Linux counters), read without torch.

``reset_peak_rss`` / ``peak_rss`` read Linux's per-process peak (VmHWM), so a step's own peak (a merge
tensor by tensor, say) can be measured inside a running notebook; ``available_ram`` is what a new
allocation can get (``MemAvailable``); ``give_back_freed_memory`` returns freed heap to the OS.
Elsewhere than Linux they answer None (or do nothing).
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path


def give_back_freed_memory() -> None:
    """Return freed heap to the OS (glibc keeps medium-sized blocks otherwise); a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
