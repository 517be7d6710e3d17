"""Install routes and the published package: the notebooks' install block, one repository address,
the sdist and wheel (metadata checked with twine), and the wheel installed in a fresh environment.

The fresh environments reuse this environment's libraries (torch, transformers, ...) through a
folder of links, without ftlab itself, so nothing is downloaded: the network is never touched.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

from ftlab.course import install
from ftlab.models.tiny import TINY_VERSION

ROOT = Path(__file__).resolve().parent.parent
CACHES = shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints")
OUTPUTS = {".venv", "venv", "build", "dist", "lab", "ftlab-runs"}  # at the top of a checkout only


def not_source(folder, names):
    return CACHES(folder, names) | (OUTPUTS & set(names) if Path(folder) == ROOT else set())


# ------------------------------------------------------------------------------ one repository address
def test_every_notebook_opens_with_the_generated_install_block():
    for path in install.notebook_paths(ROOT) + sorted((ROOT / "exercises").glob("*.ipynb")):
        first = "".join(install.setup_cell(json.loads(path.read_text()))["source"])
        assert first.startswith(install.INSTALL_BLOCK), f"{path.name}: run `python -m ftlab.course.exercises build`"
        assert "\nimport ftlab\n" in first and "env = ftlab.setup()" in first, path.name


def test_the_repository_is_named_in_one_place():
    owner_name = install.REPOSITORY.removeprefix("https://github.com/")
    texts = {path: path.read_text() for path in [ROOT / "README.md", ROOT / "RELEASING.md", ROOT / "pyproject.toml",
                                                 *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("exercises/**/*.ipynb")]}
    named = {(path.name, m) for path, text in texts.items()
             for m in re.findall(r"github(?:\.com)?/([\w.-]+/[\w.-]+?)(?:/|\"|\)|\s|$)", text)}
    assert named and all(m == owner_name for _, m in named), sorted(n for n in named if n[1] != owner_name)
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert all(url.startswith(install.REPOSITORY) for url in urls.values())
    # other projects' repositories may be cited (llama.cpp's converter in export/gguf_vocab.py); ftlab's own is
    # written once
    in_code = [p.name for p in (ROOT / "ftlab").rglob("*.py") if owner_name in p.read_text()]
    assert in_code == ["install.py"]


def test_readme_links_are_absolute_so_they_work_on_a_package_index():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(r'(?:href|src)="([^"]+)"', readme)
    assert targets
    relative = [t for t in targets if not re.match(r"https?://", t)]
    assert not relative, relative


def test_the_license_is_the_apache_license_that_pyproject_names():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_dependency_floors_admit_what_colab_preinstalls():
    # Colab imports ipywidgets 7 at kernel start: a floor of 8 would force a runtime restart
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    widgets = next(d for d in project["dependencies"] if d.startswith("ipywidgets"))
    assert re.fullmatch(r"ipywidgets>=7\.\d+", widgets.split(";")[0].split("#")[0].strip())
    uses = [p.name for p in (ROOT / "ftlab").rglob("*.py") if re.search(r"\bwidgets\.(Tab|Stack|TagsInput)\b|"
                                                                        r"ipywidgets\.widgets\.widget_", p.read_text())]
    assert not uses, f"ipywidgets-8-only API in {uses}"


# ------------------------------------------------------------------------------ fresh environments
def fresh_venv(where: Path) -> Path:
    """A new venv that sees this environment's libraries (linked, one by one) but not ftlab; its python."""
    venv.create(where, with_pip=False, symlinks=True)
    parent = Path(sysconfig.get_paths()["purelib"])
    shared = where / "shared-site-packages"
    shared.mkdir()
    for entry in parent.iterdir():
        name = entry.name.lower()
        if name.startswith(("ftlab", "__editable__", "_ftlab")) or name.endswith(".pth"):
            continue  # not this environment's ftlab (an editable install of the checkout)
        (shared / entry.name).symlink_to(entry)
    python = where / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "shared.pth").write_text(f"{shared}\n")
    return python


def offline_pip_env(index: Path) -> dict:
    """Environment variables for pip: only the local ``index`` (no network), no build isolation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    index.mkdir(exist_ok=True)
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index.as_uri(), "PIP_NO_BUILD_ISOLATION": "0",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}


def run_install_block(python: Path, env: dict, replacements: dict) -> subprocess.CompletedProcess:
    block = install.INSTALL_BLOCK
    for old, new in replacements.items():
        assert old in block
        block = block.replace(old, new)
    code = block + "import ftlab; print('ftlab from', ftlab.__file__)\n"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=python.parent)


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
    """A copy of the source tree: building in it leaves no build/ or egg-info in the checkout."""
    copy = tmp_path_factory.mktemp("source") / "ftlab"
    shutil.copytree(ROOT, copy, ignore=not_source)
    return copy


@pytest.fixture(scope="module")
def dist(source_copy, tmp_path_factory):
    """The sdist, and the wheel built from the sdist (as a package index would get them)."""
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source_copy],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return out


@pytest.mark.release
def test_without_ftlab_on_pypi_the_install_block_installs_from_the_repository(tmp_path, source_copy):
    python = fresh_venv(tmp_path / "venv")
    env = offline_pip_env(tmp_path / "index-without-ftlab")
    out = run_install_block(python, env, {f"git+{install.REPOSITORY}": source_copy.as_uri()})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert f"installed {install.PACKAGE} @ {source_copy.as_uri()}" in out.stdout
    assert f"ftlab from {tmp_path / 'venv'}" in out.stdout  # the venv's own copy, not the checkout


@pytest.mark.release
def test_the_install_block_installs_offline_from_attached_wheels(tmp_path, dist):
    python = fresh_venv(tmp_path / "venv")
    attached = tmp_path / "input" / "ftlab-wheels"  # a Kaggle dataset holding the wheels
    attached.mkdir(parents=True)
    for wheel in dist.glob("*.whl"):
        shutil.copy(wheel, attached)
    env = offline_pip_env(tmp_path / "index-without-ftlab")
    out = run_install_block(python, env, {install.KAGGLE_WHEELS: str(tmp_path / "input" / "*" / "ftlab-*.whl")})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.startswith(f"installed {install.PACKAGE}\n") and f"ftlab from {tmp_path / 'venv'}" in out.stdout


@pytest.mark.release
def test_sdist_and_wheel_pass_twine_check_and_hold_what_they_should(dist):
    files = sorted(dist.iterdir(), key=lambda f: f.suffix)
    assert [f.suffix for f in files] == [".gz", ".whl"], files
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    import zipfile

    names = zipfile.ZipFile(next(dist.glob("*.whl"))).namelist()
    assert "ftlab/course/install.py" in names and "ftlab/lab/__init__.py" in names and "ftlab/py.typed" in names
    # the pre-trained tiny model (a first demo copies it instead of pre-training) and the llama.cpp runner
    assert {"ftlab/models/tiny_pretrained/model.safetensors", "ftlab/models/tiny_pretrained/pretrain.json",
            "ftlab/models/tiny_pretrained/tokenizer.json", "ftlab/export/llama_cpp.mjs"} <= set(names)
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "notebooks/", "exercises/")) for n in names)


@pytest.mark.release
@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_environment_runs_the_demo(tmp_path, dist, tiny_path):
    python = fresh_venv(tmp_path / "venv")
    env = offline_pip_env(tmp_path / "index")
    wheel = next(dist.glob("*.whl"))
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", wheel], capture_output=True, text=True,
                         env=env, timeout=300)
    assert pip.returncode == 0, pip.stderr[-3000:]
    # an empty cache: the tiny model comes from the wheel's pre-trained copy, not from pre-training here
    env = {**env, "FTLAB_LAB": str(tmp_path / "lab"), "FTLAB_CACHE": str(tmp_path / "cache")}
    ftlab = tmp_path / "venv" / "bin" / "ftlab"
    demo = subprocess.run([ftlab, "demo", "--steps", "20"], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    assert "Recorded as round 1" in demo.stdout and "pre-training" not in demo.stdout + demo.stderr
    assert (tmp_path / "cache" / f"tiny-{TINY_VERSION}" / "model.safetensors").exists()
    runs = subprocess.run([ftlab, "runs"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert "1 round(s)" in runs.stdout and "demo" in runs.stdout, runs.stdout + runs.stderr
    where = subprocess.run([python, "-c", "import ftlab; print(ftlab.__file__)"], capture_output=True, text=True,
                           env=env, cwd=tmp_path)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout
    # a maintainers' command says why it cannot work from an installed package instead of doing nothing
    exercises = subprocess.run([ftlab, "exercises", "check"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert exercises.returncode != 0 and "source checkout" in exercises.stderr, exercises.stdout + exercises.stderr
