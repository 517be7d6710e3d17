"""Where ftlab comes from, and the install block that opens every notebook.

``REPOSITORY`` is the one place that names the project's repository: the notebooks' install block,
the Colab badges, README's links and pyproject's URLs are all checked against it by a test. It is
still a placeholder (github.com/ftlab/ftlab is not known to be published): RELEASING.md says what to
change before a release.

A notebook's first cell cannot import ftlab to install ftlab, so its install block is plain Python
generated here (``INSTALL_BLOCK``) and written into every notebook by ``python -m ftlab.course.exercises
build`` (a test fails when a notebook's copy differs). Where ftlab is missing (Colab, Kaggle) the
block tries, in order: ftlab wheels attached to a Kaggle notebook as a dataset (offline), PyPI, then
the repository. It installs the ``[tested]`` extra: the library versions ftlab was tested with, and
never torch, numpy or the Jupyter pieces, so Colab's and Kaggle's own builds stay and no runtime
restart is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPOSITORY = "https://github.com/ftlab/ftlab"  # placeholder until published: see RELEASING.md
PACKAGE = "ftlab[tested]"
FROM_REPOSITORY = f"{PACKAGE} @ git+{REPOSITORY}"
KAGGLE_WHEELS = "/kaggle/input/*/ftlab-*.whl"  # a dataset holding the wheels at its top

INSTALL_BLOCK = f'''\
# Setup, one cell. Where ftlab is missing (Colab, Kaggle) this installs it with the library versions it was
# tested with (once per session, no runtime restart): from ftlab wheels attached as a Kaggle dataset, else from
# PyPI, else from the project's repository. Kaggle: Settings -> Internet on, or attach the wheels (README).
import glob, importlib, importlib.util, os, subprocess, sys
if importlib.util.find_spec("ftlab") is None:
    wheels = sorted(glob.glob("{KAGGLE_WHEELS}"))
    routes = [["--no-index", "--find-links", os.path.dirname(wheels[-1]), "{PACKAGE}"]] if wheels else []
    for route in [*routes, ["{PACKAGE}"], ["{FROM_REPOSITORY}"]]:
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *route], capture_output=True, text=True)
        if pip.returncode == 0:
            print("installed", route[-1])
            break
    else:
        raise RuntimeError(pip.stderr[-1500:] + "\\nftlab could not be installed. On Kaggle switch Internet on "
                           "(Settings), or attach a dataset with ftlab's wheels: see the README, 'Kaggle offline'.")
    importlib.invalidate_caches()
'''

IMPORT_LINE = "import ftlab\n"


def notebook_paths(root: Path) -> list[Path]:
    """The notebooks that open with the setup cell: the course and the solved exercises."""
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "exercises" / "solutions").glob("*.ipynb"))


def with_install_block(source: str) -> str:
    """A setup cell's code with its install block (everything before ``import ftlab``) made current."""
    at = re.search(r"^import ftlab\s*$", source, re.M)
    if at is None:
        raise ValueError("a setup cell must import ftlab on a line of its own, after the install block")
    return INSTALL_BLOCK + source[at.start():]


def setup_cell(notebook: dict) -> dict:
    return next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")


def sync(root: Path, write: bool) -> list[Path]:
    """Notebooks whose install block differs from ``INSTALL_BLOCK`` (rewritten when ``write``)."""
    stale = []
    for path in notebook_paths(root):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = setup_cell(notebook)
        source = "".join(cell["source"])
        current = with_install_block(source)
        if current != source:
            stale.append(path)
            if write:
                cell["source"] = current.splitlines(keepends=True)
                path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return stale
