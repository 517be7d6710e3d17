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
