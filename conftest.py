"""For every pytest run from this folder (tests, notebooks through nbmake, exercises): the source tree
must be the same after the run as before it. Tests and notebooks write into temporary folders only;
a file they leave here (a lab, a checkpoint, a data file) fails the run and is named.

It compares a listing of files (path, size, modification time) rather than ``git status``, so it
also works in a checkout without git, and it sees files that .gitignore hides.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# caches and environments that tools keep here by design; not the tests' output
SKIPPED = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}


def snapshot(root: Path = ROOT) -> dict[str, tuple[int, int]]:
    found = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in SKIPPED and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            try:
                info = path.stat()
            except OSError:
                continue
            found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


def changes(before: dict, after: dict) -> list[str]:
    return sorted([f"added {p}" for p in after.keys() - before.keys()]
                  + [f"removed {p}" for p in before.keys() - after.keys()]
                  + [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p]])


def pytest_sessionstart(session):
    session.config._ftlab_tree = snapshot()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_ftlab_tree", None)
    if before is None or os.environ.get("FTLAB_ALLOW_TREE_CHANGES"):
        return
    found = changes(before, snapshot())
    if found:
        shown = "\n  ".join(found[:20]) + (f"\n  ... and {len(found) - 20} more" if len(found) > 20 else "")
        print(f"\nThe test run changed the source tree (tests and notebooks must write into temporary folders):"
              f"\n  {shown}")
        session.exitstatus = 1
