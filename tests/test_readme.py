"""Every Python snippet in the README runs as written, offline on the CPU (the tiny model)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_snippets():
    assert SNIPPETS


@pytest.mark.slow
@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_readme_snippet_runs_as_written(number, tmp_path, tiny_path):
    # and where a snippet trains, the preset it picks must make the tiny model learn
    check = "\nif 'result' in dir():\n    assert result.perplexity < 50, result.perplexity\n    print('LEARNED')\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "FTLAB_LAB": str(tmp_path / "lab")}
    out = subprocess.run([sys.executable, "-c", SNIPPETS[number] + check], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, env=env)
    assert out.returncode == 0, f"README snippet {number + 1}:\n{SNIPPETS[number]}\n{out.stderr[-3000:]}"
    if "train_round" in SNIPPETS[number]:
        assert "LEARNED" in out.stdout


def test_the_layout_section_names_every_module():
    """The README's layout lists the library by package: a module added or split off is listed there too."""
    text = README.read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.find("\n## ", 1)] if "\n## " in layout[1:] else layout
    named = set(re.findall(r"`([\w/]+)`", layout))
    root = README.parent / "ftlab"
    modules = [p for p in root.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")
               and p.parent.name != "checks"]  # checks/: one module per exercise, listed as the folder
    assert "checks/" in named
    assert [str(p.relative_to(root)) for p in modules if p.stem not in named] == []
    packages = [p.parent for p in root.glob("*/__init__.py")]
    assert [p.name for p in packages if f"{p.name}/" not in named] == []
