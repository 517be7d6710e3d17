"""Pitfalls that ftlab prevents silently, shown striking once with the guard off (chapters 03, 06, 07).

A learner who never meets a pitfall does not know what the library's call spares them. Each function
here lets one strike, for real where this machine can show it, and returns what the learner would see;
the chapter then shows ftlab's call that prevents it. Pitfall numbers are those of the course's list.

- 8, a template at inference that differs from training: ``mismatched_template(tokenizer)`` is a real
  chat format that is *not* the model's own (TinyLlama's ``<|user|>`` format for a ChatML model such as
  SmolLM2; the Alpaca prompt for a model whose own format is TinyLlama's). Seed 001's decisive fix was
  to make the inference prompt the training template; ``ftlab.Template.chat(tokenizer)`` is that template.
- 10, Kaggle with Internet off: ``pip_without_internet(package)`` runs pip against an index that cannot
  be reached (as Kaggle's "Internet off" leaves it) and returns pip's own error; ``pip_from_wheels(...)``
  runs the route of every notebook's setup cell, ``--no-index --find-links`` on a folder of wheels (a
  Kaggle dataset), with a small wheel built here, and shows the error it gives when a dependency's wheel
  is missing from the folder.
- 11, ``evaluate.load`` offline: ``evaluate_load_offline("rouge")`` calls it with ``HF_HUB_OFFLINE=1`` and an
  empty cache, in a fresh interpreter, and returns the error it raises (or, where ``evaluate`` is not
  installed, its message quoted with where it comes from). ``ftlab.evaluation.metrics`` needs no download.
- 12, widgets on Colab: ``ipywidgets8_only(source)`` lists what a widget code uses that ipywidgets 7
  (Colab's, imported at kernel start) lacks; ``ftlab.lab.widgets`` uses none of it (a test checks).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ftlab.templates.template import CHAT_TEMPLATE, Template

# evaluate 0.4's message when neither a local script nor the Hub has the metric (evaluate/loading.py,
# evaluation_module_factory), quoted for machines where evaluate is not installed
EVALUATE_OFFLINE_MESSAGE = ("FileNotFoundError: Couldn't find a module script at <folder>/rouge/rouge.py. "
                            "Module 'rouge' doesn't exist on the Hugging Face Hub either.")
# an index address where nothing answers: pip meets it as it meets PyPI on Kaggle with Internet off
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"
# Colab's message after pip replaces a package its kernel imported at start (ipywidgets 7 among them)
COLAB_RESTART_MESSAGE = ("WARNING: The following packages were previously imported in this runtime:\n"
                         "  [ipywidgets]\nYou must restart the runtime in order to use newly installed versions.")
# what ipywidgets 8 added or renamed: code that uses any of it fails on ipywidgets 7 (Colab's preinstalled one)
NEW_IN_IPYWIDGETS_8 = {
    "Stack": "a widget new in 8", "TagsInput": "a widget new in 8", "ColorsInput": "a widget new in 8",
    "FloatsInput": "a widget new in 8", "IntsInput": "a widget new in 8", "DatetimePicker": "a widget new in 8",
    "NaiveDatetimePicker": "a widget new in 8", "TimePicker": "a widget new in 8",
    "titles=": "Tab/Accordion's titles argument, new in 8 (7: set_title)",
    "tooltip=": "renamed in 8 (7: description_tooltip)",
}


def mismatched_template(tokenizer) -> Template:
    """A real chat format other than the model's own: the mistake of pitfall 8.

    For a model whose own template is not TinyLlama's (SmolLM2's ChatML), TinyLlama's ``<|user|>``
    format; for one whose own is TinyLlama's (ftlab's tiny model), the classic Alpaca prompt.
    """
    own = Template.chat(tokenizer)
    if own.chat_template.strip() != CHAT_TEMPLATE.strip():
        return Template.chat(tokenizer, chat_template=CHAT_TEMPLATE)
    return Template.alpaca(tokenizer)


def evaluate_load_offline(name: str = "rouge", timeout: int = 120) -> str:
    """The error ``evaluate.load(name)`` raises without the Hub, as a learner meets it (pitfall 11).

    Runs in a fresh interpreter with ``HF_HUB_OFFLINE=1`` and an empty Hugging Face cache, so a metric
    cached on this machine cannot hide the error, and in an empty folder, since evaluate first looks
    for a local script named after the metric. Returns ``"ExceptionType: message"``, or, where the
    ``evaluate`` package is not installed, the quoted message and where it comes from.
    """
    code = (f"import evaluate\ntry:\n    evaluate.load({name!r})\n    print('loaded (no error)')\n"
            "except Exception as error:\n    print(f'{type(error).__name__}: {error}')\n")
    with tempfile.TemporaryDirectory(prefix="ftlab-offline-") as folder:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": folder, "HF_EVALUATE_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1"}
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder,
                             env=env, timeout=timeout)
        output = (run.stdout.strip().splitlines() or [""])[-1].replace(folder, "<folder>")
    if run.returncode != 0 or not output:
        if "No module named 'evaluate'" in run.stderr:
            return (f"(evaluate is not installed here; evaluate 0.4 raises, from evaluate/loading.py) "
                    f"{EVALUATE_OFFLINE_MESSAGE.replace('rouge', name)}")
        return f"evaluate failed otherwise: {run.stderr.strip().splitlines()[-1:]}"
    return output


def _pip(*arguments: str, timeout: int = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--disable-pip-version-check", "--no-color",
               "--no-cache-dir", *arguments]
    # neither a pip.conf nor PIP_* variables (an extra index, a folder of wheels) may answer in the index's place
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PIP_")}, "PIP_CONFIG_FILE": os.devnull}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _last_lines(text: str, lines: int) -> str:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # a terminal's colours, should pip still send them
    return "\n".join([line for line in plain.strip().splitlines() if line.strip()][-lines:])


def pip_without_internet(package: str = "ftlab") -> str:
    """pip's own error for ``pip install <package>`` when its index cannot be reached (pitfall 10).

    ``--dry-run`` installs nothing. One retry and a short timeout keep it to seconds (pip's default is
    five retries with growing pauses, which a Kaggle notebook with Internet off waits through). Kaggle's
    own line says ``Temporary failure in name resolution`` where this one says ``Connection refused``.
    """
    run = _pip("--ignore-installed", "--no-deps", "--retries", "1", "--timeout", "3", "--index-url", UNREACHABLE_INDEX,
               package)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if not line.startswith("Looking in")]
    return re.sub(r" object at 0x[0-9a-f]+", "", _last_lines("\n".join(lines), 3))


def _wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid wheel (one module, its metadata, its RECORD) for pip to find."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}.py": f'"""{name}: a stand-in package for the offline install demonstration."""\n',
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                     + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: ftlab\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def pip_from_wheels(folder: str, with_dependency_wheel: bool = True) -> str:
    """The setup cell's offline route, ``pip install --no-index --find-links <folder>``, on wheels made here.

    Writes two small wheels into ``folder`` (a stand-in package ``ftlab_wheels_demo`` that requires
    ``ftlab_wheels_dependency``, and that dependency unless ``with_dependency_wheel`` is False) and
    returns the last lines pip prints: "Would install ..." when the folder holds every wheel, pip's
    error naming the missing one when it does not (then add that wheel to the Kaggle dataset).
    """
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    for wheel in folder_path.glob("ftlab_wheels_*.whl"):
        wheel.unlink()
    _wheel(folder_path, "ftlab_wheels_demo", "1.0", requires=("ftlab_wheels_dependency",))
    if with_dependency_wheel:
        _wheel(folder_path, "ftlab_wheels_dependency", "1.0")
    run = _pip("--no-index", "--find-links", str(folder_path), "ftlab_wheels_demo")
    return _last_lines(run.stdout + run.stderr, 2).replace(str(folder_path), "<folder>")


def ipywidgets8_only(source: str) -> dict[str, str]:
    """What ``source`` (widget code) uses that ipywidgets 7 lacks, each with why (pitfall 12)."""
    found = {}
    for name, why in NEW_IN_IPYWIDGETS_8.items():
        pattern = rf"\b{re.escape(name[:-1])}\s*=" if name.endswith("=") else rf"\.{name}\b"
        if re.search(pattern, source):
            found[name] = why
    return found
