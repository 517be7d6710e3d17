"""Learner copies of the exercise notebooks, generated from the solved ones.

The solved notebook in ``exercises/solutions/`` is the single source. Its answer code sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION``; the learner's copy in ``exercises/`` replaces that
block with ``name = None  # TODO`` for each name the solution assigns, or for the names listed as
``### BEGIN SOLUTION (stub: name, other)`` (so the check below it can say
"still None" instead of a NameError), drops outputs, and tags the exercise cells and their checks
``raises-exception`` so nbmake runs the unsolved copy to the end. ``ftlab exercises build`` writes
the copies; ``ftlab exercises check`` (and a test) fails when a copy has drifted from its source.
Both first bring every notebook's install block up to date with ``ftlab.course.install`` (``build``) or
report the ones that differ (``check``). They work in a source checkout only: an installed wheel
holds no notebooks, and says so. ``python -m ftlab.course.exercises build`` does the same as the command.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from ftlab.course import install

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TAG = "raises-exception"
ROOT = Path(__file__).resolve().parents[2] / "exercises"  # a source checkout: ftlab/course/ -> the repository


def _assigned_names(code: str) -> list[str]:
    names: list[str] = []
    for node in ast.parse(code).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign | ast.AugAssign) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id not in names:
                    names.append(leaf.id)
    return names


def stub_source(source: str) -> str:
    """The cell's code with each solution block replaced by ``None`` stubs."""
    pattern = re.compile(rf"^([ \t]*){re.escape(BEGIN)}([^\n]*)\n(.*?)^[ \t]*{re.escape(END)}[^\n]*\n?", re.M | re.S)

    def replace(match: re.Match) -> str:
        indent, options, block = match.groups()
        body = "\n".join(line[len(indent):] for line in block.splitlines())
        # "(stub: a, b)" after the marker names the answers; otherwise every name the block assigns
        declared = re.search(r"stub:\s*([\w\s,]+)", options)
        names = [n.strip() for n in declared.group(1).split(",")] if declared else _assigned_names(body)
        stubs = [f"{indent}{name} = None  # TODO" for name in names] or [f"{indent}pass  # TODO"]
        return "\n".join(stubs) + "\n"

    return pattern.sub(replace, source)


def learner_version(solution: dict, source_name: str) -> dict:
    """The learner's notebook for one solved notebook (a new dict; the input is not changed)."""
    cells, after_exercise = [], False
    header = {"cell_type": "markdown", "metadata": {}, "id": "generated-header",
              "source": [f"*Generated from `exercises/solutions/{source_name}` by `ftlab exercises build`: "
                         "edit that file, not this one.*"]}
    for cell in solution["cells"]:
        cell = json.loads(json.dumps(cell))  # deep copy
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            is_exercise = BEGIN in source
            is_check = "ftlab.course.checks." in source and (after_exercise or is_exercise)
            if is_exercise:
                source = stub_source(source)
            tags = [t for t in cell.get("metadata", {}).get("tags", []) if t != TAG]
            if is_exercise or is_check:
                tags.append(TAG)
            cell["metadata"] = {**cell.get("metadata", {}), "tags": tags}
            if not tags:
                cell["metadata"].pop("tags")
            cell["source"] = source.splitlines(keepends=True)
            cell["outputs"], cell["execution_count"] = [], None
            after_exercise = is_exercise or (after_exercise and is_check)
        cells.append(cell)
    return {**solution, "cells": [header, *cells]}


def _render(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def pairs(root: Path = ROOT) -> list[tuple[Path, Path]]:
    return [(path, root / path.name) for path in sorted((root / "solutions").glob("*.ipynb"))]


def _source_checkout(root: Path) -> None:
    if not (root / "solutions").is_dir():
        raise FileNotFoundError(f"no {root / 'solutions'}: `ftlab exercises` works in a source checkout of ftlab "
                                "(git clone), not in an installed package")


def build(root: Path = ROOT) -> int:
    _source_checkout(root)
    for path in install.sync(root.parent, write=True):
        print(f"updated the install block of {path}")
    for solution, learner in pairs(root):
        learner.write_text(_render(learner_version(json.loads(solution.read_text()), solution.name)))
        print(f"wrote {learner} from {solution}")
    return 0


def check(root: Path = ROOT) -> int:
    _source_checkout(root)
    stale = [f"{path}: its install block differs from ftlab.course.install" for path in install.sync(root.parent, write=False)]
    drifted = [f"{learner} differs from its solution" for solution, learner in pairs(root)
               if not learner.exists()
               or learner.read_text() != _render(learner_version(json.loads(solution.read_text()), solution.name))]
    for problem in stale + drifted:
        print(f"{problem}: run `python -m ftlab.course.exercises build`")
    return 1 if stale or drifted else 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:] not in (["build"], ["check"]):
        sys.exit("usage: python -m ftlab.course.exercises build|check")
    sys.exit(build() if sys.argv[1] == "build" else check())
