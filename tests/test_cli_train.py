"""``ftlab train CONFIG.yaml`` trains the round a notebook would, and ``ftlab plan`` answers from the planner."""


import pytest

import ftlab
from ftlab import cli


def test_ftlab_train_records_the_round_a_notebook_records(tmp_path, tiny_path, greet_data, round_file):
    train, evaluation = greet_data
    round_file(tmp_path, train, evaluation, name="the same round", learning_rate="2e-3", max_steps=12,
                     eval_steps=6, seed=7)
    assert cli.main(["train", str(tmp_path / "round.yaml")]) == 0
    from_file = ftlab.Lab(tmp_path / "lab")[1]

    # the notebook's way: the same preset and knobs, the same model, the same rows
    config = ftlab.RoundConfig.preset("cpu-tiny", learning_rate=2e-3, max_steps=12, eval_steps=6, seed=7)
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    in_notebook = ftlab.Lab(tmp_path / "notebook").train(config, model, tokenizer, train, evaluation,
                                                         name="the same round")
    mine, theirs = from_file.record, in_notebook.record
    assert from_file.status == in_notebook.status == "succeeded"
    assert mine["config"] == theirs["config"] and mine["seed"] == theirs["seed"] == 7
    assert mine["data"]["train"]["fingerprint"] == theirs["data"]["train"]["fingerprint"]
    assert mine["data"]["eval"]["fingerprint"] == theirs["data"]["eval"]["fingerprint"]
    assert mine["template"]["fingerprint"] == theirs["template"]["fingerprint"]
    assert mine["world_size"] == theirs["world_size"] == 1 and mine["effective_batch_size"] == 16
    # same seed, same process, same CPU: the same numbers (to float rounding)
    for metric in ("eval_loss_before", "eval_loss", "train_loss"):
        assert mine["metrics"][metric] == pytest.approx(theirs["metrics"][metric], abs=1e-6), metric
    assert mine["metrics"]["eval_loss"] < mine["metrics"]["eval_loss_before"]


def test_ftlab_plan_prints_the_planners_answer(tmp_path, capsys):
    assert cli.main(["plan", "--quantization", "4bit", "--max-length", "1024"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Plan: TinyLlama/TinyLlama-1.1B-Chat-v1.0 on a T4") and "NF4" in out and "peak" in out
    assert str(ftlab.plan(quantization="4bit", max_length=1024)) in out  # the same plan as ftlab.plan's
    assert cli.main(["plan", "--suggest", "--rows", "2600", "--max-length", "512"]) == 0
    assert capsys.readouterr().out.startswith("Suggestion: ")
    assert cli.main(["plan", "--suggest"]) == 1
    assert "--suggest needs --rows and --max-length" in capsys.readouterr().err
    (tmp_path / "round.yaml").write_text("preset: t4-qlora\nmodel: TinyLlama/TinyLlama-1.1B-Chat-v1.0\ntrain: demo\n"
                                         "batch_size: 8\n", encoding="utf-8")
    assert cli.main(["plan", str(tmp_path / "round.yaml")]) == 0
    out = capsys.readouterr().out
    assert "batch 8 x 1024 tokens" in out and out.startswith("Plan: TinyLlama/TinyLlama-1.1B-Chat-v1.0")
