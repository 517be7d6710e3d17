"""Where and by what a round ran: library versions, the machine, and the process (alive or gone).

A round's record keeps ``versions()`` and ``hardware()`` so a result can be reproduced or explained
later, and ``this_process()`` so a reader of the lab can tell a round still training from one whose
kernel died (``process_alive``). The machine's facts come from ``ftlab.machine``; nothing here imports torch.
"""

from __future__ import annotations

import os
import platform
import socket
import sys

from ftlab.lab.storage import now, seconds_between
from ftlab.machine import VERSION, detect_platform, gpus, library_versions
from ftlab.round.rehearsal import rehearsal_record

STALE_AFTER_S = 15 * 60  # a round on another machine silent this long is taken as interrupted


def versions() -> dict:
    return {"ftlab": VERSION, "python": sys.version.split()[0], **library_versions()}


def hardware() -> dict:
    import psutil

    found = {"platform": detect_platform(), "os": platform.platform(), "cpu_count": os.cpu_count(),
             "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "gpu": None}
    found_gpus = gpus()  # torch's view when training loaded it, else nvidia-smi's: never imports torch
    if found_gpus:
        gpu = found_gpus[0]
        found["gpu"] = {"name": gpu.name, "count": len(found_gpus), "capability": "{}.{}".format(*gpu.capability),
                        "memory_gib": round(gpu.memory_gib, 1)}
    found["rehearsed"] = rehearsal_record()  # a T4 rehearsed on this CPU (FTLAB_REHEARSE), or None
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
