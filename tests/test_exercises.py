"""Exercises: learner copies generated from the solutions, in sync, failing only where the learner works."""

import json
from pathlib import Path

import pytest

from ftlab.course import exercises

ROOT = Path(__file__).resolve().parent.parent / "exercises"


def test_learner_copies_match_their_solutions():
    assert exercises.pairs(ROOT), "no solved exercise notebooks found"
    assert exercises.check(ROOT) == 0, "run `ftlab exercises build`"


def test_drift_is_detected(tmp_path):
    (tmp_path / "solutions").mkdir()
    solution, learner = exercises.pairs(ROOT)[0]
    (tmp_path / "solutions" / solution.name).write_text(solution.read_text())
    exercises.build(tmp_path)
    assert exercises.check(tmp_path) == 0
    edited = json.loads((tmp_path / "solutions" / solution.name).read_text())
    edited["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["new"], "id": "x"})
    (tmp_path / "solutions" / solution.name).write_text(json.dumps(edited))
    assert exercises.check(tmp_path) == 1


def test_solution_blocks_become_none_stubs():
    source = ("x = 1\n# TODO: answer\n### BEGIN SOLUTION\nanswer = x + 1\nhelper, other = 2, 3\n"
              "### END SOLUTION\nprint(answer)\n")
    assert exercises.stub_source(source) == (
        "x = 1\n# TODO: answer\nanswer = None  # TODO\nhelper = None  # TODO\nother = None  # TODO\nprint(answer)\n")
    declared = "### BEGIN SOLUTION (stub: answer)\nk = 2\nanswer = k\n### END SOLUTION\n"
    assert exercises.stub_source(declared) == "answer = None  # TODO\n"


def test_no_solution_survives_in_a_learner_copy():
    for _, learner in exercises.pairs(ROOT):
        text = learner.read_text()
        assert exercises.BEGIN not in text and exercises.END not in text


@pytest.mark.slow
def test_unsolved_copy_fails_only_in_exercise_cells_with_a_helpful_check(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    for _, learner in exercises.pairs(ROOT):
        notebook = nbformat.read(learner, as_version=4)
        NotebookClient(notebook, timeout=300, allow_errors=True,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        for cell in notebook.cells:
            errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
            if errors:
                assert "raises-exception" in cell.metadata.get("tags", []), cell.source
                assert errors[0].ename == "CheckFailed", (errors[0].ename, errors[0].evalue)
                # the learner sees the check's message, not a traceback through ftlab's source
                assert not any("ftlab/checks" in line or "Traceback" in line for line in errors[0].traceback)
        checks = [c for c in notebook.cells if c.cell_type == "code" and "ftlab.course.checks." in c.source]
        assert checks and all(any(o.output_type == "error" for o in c.outputs) for c in checks)
