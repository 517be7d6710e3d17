"""The command line: fast answers without heavy imports, and the demo round end to end."""

import os
import subprocess
import sys

import pytest

import ftlab


def run(*code_or_args, module=False):
    command = [sys.executable, "-m", "ftlab.cli", *code_or_args] if module else [sys.executable, "-c", *code_or_args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_help_and_doctor_do_not_import_torch():
    out = run("import sys, ftlab.cli as c; c.main(['doctor']); print('heavy:', sorted(m for m in "
              "('torch', 'transformers', 'trl', 'peft') if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert "heavy: []" in out.stdout
    assert "GPU:" in out.stdout and "transformers" in out.stdout and "Hub" in out.stdout


def test_import_ftlab_is_light():
    out = run("import sys, ftlab; print('torch' in sys.modules, ftlab.__version__)")
    assert out.stdout.split() == ["False", ftlab.__version__]


def test_help_lists_the_commands():
    out = run("--help", module=True)
    assert out.returncode == 0 and all(c in out.stdout for c in ("doctor", "demo", "exercises"))


def test_every_public_name_resolves():
    for name in ftlab.__all__:
        assert getattr(ftlab, name) is not None


@pytest.mark.slow
def test_demo_runs_a_whole_round_and_shows_before_and_after(tmp_path, tiny_path):
    out = run("demo", "--output-dir", str(tmp_path / "demo"), "--steps", "60", module=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "before -> after" in out.stdout and "eval loss after" in out.stdout
    assert "using ftlab's tiny model" in out.stdout
    assert (tmp_path / "demo" / "adapter" / "adapter_model.safetensors").exists()
