"""For every pytest run from this folder (tests, notebooks through nbmake, exercises): the source tree
must be the same after the run as before it. Tests and notebooks write into temporary folders only;
a file they leave here (a lab, a checkpoint, a data file) fails the run and is named.

Every notebook nbmake executes must also be quiet: a run whose outputs hold more than a handful of
progress bars, or any trainer table, fails with the cells named (``ftlab.course.renderings.too_noisy``).
The executed renderings in ``docs/`` are for readers on GitHub and are never collected.

It compares a listing of files (path, size, modification time) rather than ``git status``, so it
also works in a checkout without git, and it sees files that .gitignore hides.
"""

import os
from pathlib import Path

# A fast run (ftlab.env.course_model): tests and every notebook nbmake executes use ftlab's tiny model, in seconds;
# the kernels nbmake starts inherit it. FTLAB_FAST=0 runs them on the course's real model instead (slow).
os.environ.setdefault("FTLAB_FAST", "1")

ROOT = Path(__file__).resolve().parent
# caches and environments that tools keep here by design; not the tests' output
collect_ignore = ["docs"]  # docs/executed: the chapters' renderings (ftlab.course.renderings), read on GitHub, not run
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


def pytest_configure(config):
    try:
        from nbmake import pytest_items
        from nbmake.nb_result import NotebookError
    except ImportError:  # a run without nbmake executes no notebooks
        return
    from ftlab.course.renderings import too_noisy

    class QuietNotebookRun(pytest_items.NotebookRun):
        def execute(self):
            result = super().execute()
            if result.error is None and (problem := too_noisy(result.nb)):
                result.error = NotebookError(summary=f"{Path(self.filename).name}: too noisy",
                                             trace=f"{Path(self.filename).name}: {problem}", failing_cell_index=0)
            return result

    pytest_items.NotebookRun = QuietNotebookRun
