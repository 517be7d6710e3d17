"""A chapter that trains many rounds shows its results, not every round's output: the lab's quiet rounds,
the checkpoint notice once per lab, a table of chosen rounds, and where ``Lab.default`` puts a lab."""

from __future__ import annotations

import ftlab
from ftlab.config import RoundConfig

SHORT = dict(max_steps=10, eval_steps=10, logging_steps=5)


def test_a_quiet_round_shows_its_verdict_and_keeps_the_rest_in_its_log(tiny, greet_data, tmp_path, capsys):
    lab = ftlab.Lab(tmp_path / "lab")
    loud = lab.train(RoundConfig.preset("cpu-tiny", **SHORT), *tiny, *greet_data, name="loud", samples=0)
    said = capsys.readouterr().out
    assert "Checkpoints every" in said and "Trainable parameters" in said and "Lab round 1" in said
    quiet = lab.train(RoundConfig.preset("cpu-tiny", **SHORT, seed=1), *tiny, *greet_data, name="quiet",
                      samples=0, quiet=True)
    said = capsys.readouterr().out
    assert quiet.status == "succeeded" and said.strip() == quiet.verdict(), said  # the verdict alone
    log = (quiet.path / "stdout.log").read_text()
    assert "Trainable parameters" in log and quiet.verdict() in log  # the rest one file away
    assert loud.config.save_steps == quiet.config.save_steps == 10  # both checkpointed; the notice said once


def test_a_quiet_sweep_prints_a_line_per_round_and_leaves_the_result_to_the_caller(tiny, greet_data, tmp_path,
                                                                                    capsys):
    lab = ftlab.Lab(tmp_path / "lab")
    result = lab.sweep(RoundConfig.preset("cpu-tiny", **SHORT), {"lora_r": [8]}, *tiny, *greet_data, repeats=1,
                       samples=0, quiet=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Checkpoints every")  # once, for the whole sweep
    assert [line.split(":")[0] for line in lines[1:]] == ["✅ Round 1 (sweep baseline)", "✅ Round 2 (sweep lora_r=8)"]
    assert [p.round_id for p in result.points] == [1, 2]


def test_the_table_of_chosen_rounds_keeps_their_repeats_and_leaves_out_the_others(tiny, greet_data, tmp_path):
    lab = ftlab.Lab(tmp_path / "lab")
    config = RoundConfig.preset("cpu-tiny", max_steps=4, eval_steps=4, logging_steps=2)
    old = lab.train(config, *tiny, *greet_data, name="an earlier session's", samples=0, quiet=True)
    mine = lab.train(config, *tiny, *greet_data, name="this session's", samples=0, quiet=True)
    lab.rerun(mine.id, model=tiny[0], tokenizer=tiny[1], quiet=True)
    assert list(lab.table(ids=[mine.id]).index) == [2, 3] and list(lab.table().index) == [1, 2, 3]
    assert old.id == 1


def test_a_chapter_lab_persists_on_the_platform_and_is_temporary_only_under_a_test(monkeypatch, capsys):
    monkeypatch.delenv("FTLAB_LAB", raising=False)
    monkeypatch.setenv("FTLAB_FAST", "1")  # what conftest sets for tests and nbmake, and CI
    tested = ftlab.Lab.default("ftlab-04")
    assert tested.path.name.startswith("ftlab-04-") and "temporary" in capsys.readouterr().out
    monkeypatch.setenv("FTLAB_FAST", "0")
    monkeypatch.setattr("ftlab.lab.book.detect_platform", lambda: "kaggle")
    assert str(ftlab.Lab.default("ftlab-04").path) == "/kaggle/working/ftlab-04"
    monkeypatch.setattr("ftlab.lab.book.detect_platform", lambda: "local")
    assert str(ftlab.Lab.default("ftlab-04").path) == "lab/ftlab-04" and str(ftlab.Lab.default().path) == "lab"


def test_rounds_with_other_batch_sizes_measure_the_same_model_alike(tiny, greet_data, tmp_path):
    # the eval loss is a mean of batch means: evaluated at each round's own batch size, the untouched base model
    # measured differently in two rounds, and the table compared the evaluations instead of the rounds
    # (answers of unequal lengths, where batch 1 and batch 4 weigh the rows differently: the old way told them apart)
    lab = ftlab.Lab(tmp_path / "lab")
    answers = [("Ada", "Hi."), ("Bo", "Good day to you, Bo, and a warm welcome to everyone who came along with you."),
               ("Cy", "Hello, Cy!"), ("Di", "Welcome, Di. It is a pleasure to see you here again after so long away.")]
    evaluation = [{"messages": [{"role": "user", "content": f"Greet {name}."}, {"role": "assistant", "content": said}]}
                  for name, said in answers]
    measured = [lab.train(RoundConfig.preset("cpu-tiny", max_steps=1, logging_steps=1, batch_size=size), *tiny,
                          greet_data[0], evaluation, samples=0, quiet=True).metrics["eval_loss_before"] for size in (1, 4)]
    assert measured[0] == measured[1], measured
