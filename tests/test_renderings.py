"""Renderings of the executed chapters for GitHub readers, and the noise count that keeps chapters quiet."""

import json
from pathlib import Path

import pytest

from ftlab.course import renderings

ROOT = Path(__file__).resolve().parent.parent


def _notebook(*outputs):
    return {"cells": [{"cell_type": "code", "source": "", "outputs": list(outputs)}]}


def test_noise_counts_bars_once_each_and_only_the_trainers_tables():
    widget = {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {},
                                                      "text/plain": "Map:   0%|          | 0/462"}}
    redrawn = {"output_type": "stream", "name": "stderr",
               "text": "Map:  10%|#  | 1/10\rMap: 100%|###| 10/10\nFilter:  50%|#  | 1/2\r"}
    trainer = {"output_type": "display_data", "data": {"text/html": "<progress value='2' max='2'></progress>"
                                                       "<table><th>Training Loss</th></table>"}}
    lab_table = {"output_type": "execute_result", "data": {"text/html": "<table><th>eval loss</th></table>"}}
    found = renderings.noise(_notebook(widget, redrawn, trainer, lab_table))
    assert found == {"progress_bars": 4, "trainer_tables": 1}  # a chapter's own tables are not noise
    assert renderings.noise(_notebook(lab_table, {"output_type": "stream", "name": "stdout", "text": "50% done"})) == {
        "progress_bars": 0, "trainer_tables": 0}


def test_too_noisy_names_the_cells():
    bar = {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {},
                                                   "text/plain": "Map:   0%|          | 0/462"}}
    assert renderings.too_noisy(_notebook(*[bar] * renderings.MAX_PROGRESS_BARS)) is None
    problem = renderings.too_noisy(_notebook(*[bar] * (renderings.MAX_PROGRESS_BARS + 1)))
    assert f"{renderings.MAX_PROGRESS_BARS + 1} progress bars" in problem and "cell 1" in problem


def test_nbmake_fails_a_noisy_notebook(tmp_path):
    """The root conftest holds every notebook nbmake runs (chapters and exercises) to the count."""
    import nbformat
    from nbmake import pytest_items

    assert pytest_items.NotebookRun.__name__ == "QuietNotebookRun"
    noisy = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys\nfor name in 'abcd':\n    sys.stderr.write(f'{name}: 100%|####| 4/4\\r')")])
    path = tmp_path / "noisy.ipynb"
    nbformat.write(noisy, path)
    result = pytest_items.NotebookRun(path, 60).execute()
    assert result.error is not None and "4 progress bars" in result.error.trace


def test_every_chapter_has_an_executed_rendering_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert chapters
    for chapter in chapters:
        rendering = renderings.rendering_of(chapter)
        assert rendering.exists(), f"no rendering of {chapter.name}: run `python -m ftlab.course.renderings {chapter}`"
        cells = [c for c in json.loads(rendering.read_text())["cells"] if c["cell_type"] == "code"]
        assert any(c["outputs"] for c in cells), f"{rendering.name} holds no outputs"
        errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{rendering.name} stopped with {errors[0]['ename']}"
        assert f"docs/executed/{chapter.name}" in readme, f"the README's course table does not link {rendering.name}"
    for chapter in chapters:  # the sources stay output-free
        cells = json.loads(chapter.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), chapter.name


def test_stale_renderings_are_reported(monkeypatch, tmp_path):
    sources, rendered = tmp_path / "notebooks", tmp_path / "docs" / "executed"
    sources.mkdir()
    rendered.mkdir(parents=True)
    source = {"cells": [{"cell_type": "code", "source": "x = 1", "outputs": []}]}
    (sources / "00_a.ipynb").write_text(json.dumps(source))
    monkeypatch.setattr(renderings, "SOURCES", sources)
    monkeypatch.setattr(renderings, "RENDERED", rendered)
    monkeypatch.setattr(renderings, "ROOT", tmp_path)
    assert renderings.stale() == ["00_a.ipynb: no rendering in docs/executed"]
    (rendered / "00_a.ipynb").write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": "header"},
                                                               {**source["cells"][0], "source": "x = 2"}]}))
    assert renderings.stale() == ["00_a.ipynb: its rendering runs older code"]
    (rendered / "00_a.ipynb").write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": "header"},
                                                               source["cells"][0]]}))
    assert renderings.stale() == []


@pytest.mark.parametrize("argv", [["render"], ["x.py"]])
def test_the_command_refuses_what_it_does_not_know(argv, capsys):
    assert renderings.main(argv) == 2
    assert "usage" in capsys.readouterr().err
