"""Packaging: tested pins agree everywhere, notebooks are committed clean and open the same way."""

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "exercises").rglob("*.ipynb"))


def pins(path: Path) -> list[str]:
    return sorted(line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))


def test_the_tested_extra_equals_constraints_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(project["optional-dependencies"]["tested"]) == pins(ROOT / "constraints.txt")


def test_torch_has_only_a_lower_bound():
    # Colab's and Kaggle's CUDA torch must stay; an upper pin would replace it with a multi-GB download
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = [d for d in project["dependencies"] if d.startswith("torch")]
    assert torch and all(re.fullmatch(r"torch>=[\d.]+", d) for d in torch)


def test_notebooks_are_committed_without_outputs():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, path.name


def test_the_source_tree_check_sees_added_changed_and_ignored_files(tmp_path):
    # conftest.py fails a test run that leaves files in the checkout; its listing must see what git ignores
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    tree = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tree)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "kept.ipynb").write_text("{}")
    before = tree.snapshot(tmp_path)
    (tmp_path / "notebooks" / "lab" / "round-001").mkdir(parents=True)  # .gitignore hides lab/
    (tmp_path / "notebooks" / "lab" / "round-001" / "record.json").write_text("{}")
    (tmp_path / "notebooks" / "kept.ipynb").write_text('{"cells": []}')
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_text("")
    assert tree.changes(before, tree.snapshot(tmp_path)) == [
        "added notebooks/lab/round-001/record.json", "changed notebooks/kept.ipynb"]
