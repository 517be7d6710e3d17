"""Kill -9 a training process mid-round: the lab shows the round interrupted and resumes it to the same loss.

Tolerance: the resumed round's final train loss (the mean of the last logging window) and final eval loss
must match an uninterrupted round with the same config and seed to within 1e-4 (relative). The trainer
restores optimiser, scheduler, RNG state and data position; on the tiny model on a CPU the two agree
bit for bit (measured difference 0.0), so the tolerance only absorbs thread-scheduling noise.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import ftlab
from ftlab.config import RoundConfig

TOLERANCE = 1e-4
KNOBS = dict(max_steps=60, save_steps=10, logging_steps=5, eval_steps=20)

SCRIPT = """
import sys, time
import ftlab
from transformers import TrainerCallback
from ftlab.data import instructions, split_train_eval

class Slow(TrainerCallback):  # gives the test time to kill it between two checkpoints
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.2)

lab_path, tiny_path, knobs = sys.argv[1], sys.argv[2], eval(sys.argv[3])
train, evaluation = split_train_eval(instructions(600, "greet_politely", seed=1), eval_size=12, seed=1)
model, tokenizer = ftlab.tiny_model(path=tiny_path)
config = ftlab.RoundConfig.preset("cpu-tiny", **knobs)
ftlab.Lab(lab_path).train(config, model, tokenizer, train, evaluation, name="killed", callbacks=[Slow()])
"""


def logged_steps(log):
    try:
        return [json.loads(line).get("step", 0) for line in log.read_text().splitlines()]
    except (OSError, ValueError):
        return []


def test_a_killed_round_reads_interrupted_and_resumes_to_the_clean_final_loss(tmp_path, tiny_path, greet_data):
    lab_path = tmp_path / "lab"
    script = tmp_path / "train_and_get_killed.py"
    script.write_text(SCRIPT)
    with open(tmp_path / "child.log", "w") as out:
        child = subprocess.Popen([sys.executable, str(script), str(lab_path), str(tiny_path), repr(KNOBS)],
                                 stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 120
        # step 25 is logged after checkpoint-20 was written and well before checkpoint-30 starts
        while max(logged_steps(lab_path / "round-001" / "log.jsonl"), default=0) < 25:
            assert child.poll() is None, (tmp_path / "child.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the training process never reached step 25"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()

    lab = ftlab.Lab(lab_path)
    killed = lab.round(1)
    assert killed.record["status"] == "running"  # what the dead process left on disk ...
    assert killed.status == "interrupted"  # ... and what the lab reads: its pid no longer exists
    assert killed.failure["kind"] == "interrupted" and "no longer exists" in killed.failure["message"]
    assert "lab.resume(1) continues from checkpoint-20" in killed.failure["advice"]
    assert lab.table().loc[1, "status"] == "❎ interrupted"
    for path in (p for p in killed.path.rglob("*") if p.is_file()):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix in (".log", ".txt", ".jinja", ".md"):
            path.read_text(encoding="utf-8")

    resumed = lab.resume(1)  # model and data reloaded from the record, as after a runtime restart
    assert resumed.status == "succeeded" and resumed.metrics["steps"] == 60
    assert [a["from_checkpoint"] for a in resumed.record["attempts"]] == [None, "checkpoint-20"]
    steps, _ = resumed.curve("loss")
    assert steps == [1, *range(5, 61, 5)]  # steps logged twice (21-25) are taken from the resumed attempt

    clean = lab.train(RoundConfig.preset("cpu-tiny", **KNOBS), *ftlab.tiny_model(path=tiny_path), *greet_data,
                      name="clean")
    for key in ("train_loss", "eval_loss"):
        assert math.isclose(resumed.metrics[key], clean.metrics[key], rel_tol=TOLERANCE), key
    assert resumed.metrics["eval_loss"] < 0.6 * resumed.metrics["eval_loss_before"]  # and it did learn
