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
    assert "SmolLM2-135M-Instruct: " in out.stdout  # whether the offline real model is there, or the command


def test_import_ftlab_is_light():
    out = run("import sys, ftlab; print('torch' in sys.modules, ftlab.__version__)")
    assert out.stdout.split() == ["False", ftlab.__version__]


def test_help_lists_the_learners_commands_only():
    out = run("--help", module=True)
    assert out.returncode == 0 and all(c in out.stdout for c in ("doctor", "demo", "runs"))
    assert "exercises" not in out.stdout  # a maintainers' command
    assert run("exercises", "--help", module=True).returncode == 0  # still there for CI and maintainers


def one_line_error(out, *words):
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert all(w in lines[0] for w in words), lines


def test_bad_arguments_are_refused_with_one_line(tmp_path):
    for steps in ("0", "-5", "many"):
        one_line_error(run("demo", "--steps", steps, module=True), "--steps", "at least 1")
    one_line_error(run("runs", str(tmp_path / "nowhere"), module=True), "no lab folder")
    one_line_error(run("frobnicate", module=True), "invalid choice")


def test_runs_into_a_closed_pipe_ends_quietly(tmp_path):
    # `ftlab runs | head`: the reader is gone before ftlab writes; no BrokenPipeError traceback
    process = subprocess.Popen([sys.executable, "-m", "ftlab.cli", "runs", str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "FTLAB_LAB": str(tmp_path)})
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


def test_every_public_name_resolves():
    for name in ftlab.__all__:
        assert getattr(ftlab, name) is not None


@pytest.mark.slow
def test_demo_is_quiet_and_recorded_in_the_lab_that_runs_shows_next(tmp_path, tiny_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FTLAB_LAB": str(tmp_path / "lab")}
    out = subprocess.run([sys.executable, "-m", "ftlab.cli", "demo", "--steps", "30"], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "Model: ftlab's tiny model" in out.stdout and "before -> after" in out.stdout
    assert any(line.startswith("Eval loss") for line in lines) and "Recorded as round 1" in out.stdout
    # a few readable lines: no raw log dicts, no progress bars
    assert len(lines) < 20 and "{'loss'" not in out.stdout, out.stdout
    assert "it/s" not in out.stderr and "examples/s" not in out.stderr, out.stderr[-2000:]
    assert (tmp_path / "lab" / "round-001" / "adapter" / "adapter_model.safetensors").exists()

    runs = subprocess.run([sys.executable, "-m", "ftlab.cli", "runs"], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp_path)
    assert runs.returncode == 0 and "1 round(s)" in runs.stdout and "demo" in runs.stdout, runs.stdout + runs.stderr
    one_line_error(subprocess.run([sys.executable, "-m", "ftlab.cli", "runs", "--baseline", "99"], capture_output=True,
                                  text=True, timeout=120, env=env, cwd=tmp_path), "--baseline 99", "no such round")


@pytest.mark.slow
def test_two_demo_rounds_with_one_seed_give_the_same_losses(tmp_path, tiny_path, capsys):
    from ftlab.course.demo import run_demo

    first, second = (run_demo(lab=tmp_path / name) for name in ("a", "b"))
    assert first.status == second.status == "succeeded"
    assert first.curve("loss") == second.curve("loss") and first.curve("eval_loss") == second.curve("eval_loss")
    assert len(first.curve("loss")[0]) >= 10  # the demo's whole round, logged every 10 steps
