"""Progress: one rule for when a loop shows it (by time), one in-place line that every display writes to,
and the printed lines of ``ftlab demo`` / ``ftlab train``."""

import io
from types import SimpleNamespace

import pytest

from ftlab.console import lines as quiet


class _Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, data, raw=False):
        self.shown.append(("update", data["text/plain"]))


@pytest.fixture
def notebook(monkeypatch):
    """A fake notebook: every display call and in-place update, in order, as ("display" | "update", text)."""
    import IPython.display

    shown = []

    def display(data, raw=False, display_id=False):
        assert display_id  # an output that can be updated in place
        shown.append(("display", data["text/plain"]))
        return _Handle(shown)

    monkeypatch.setattr(quiet, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    return shown


def test_the_rule_is_about_time_not_about_how_many_batches():
    assert not quiet.worth_showing(0.0)  # nothing known yet
    assert not quiet.worth_showing(0.1, 1, 10)  # ten batches at 0.1 s: over in a second, never shown
    assert quiet.worth_showing(0.5, 1, 10)  # ten at 0.5 s: five seconds, shown from the first batch
    assert quiet.worth_showing(1.5, 1, 2)  # two slow batches: shown (batch counts said no below 3)
    assert not quiet.worth_showing(0.05, 100, 2000)  # 2,000 rows at 0.5 ms: one second
    assert quiet.worth_showing(0.5, 100, 2000)  # at 5 ms: ten seconds, shown after the first hundred
    assert quiet.worth_showing(quiet.SHOW_AFTER_S)  # whatever the count, once it has run that long
    assert not quiet.worth_showing(quiet.SHOW_AFTER_S / 2, 0, None)  # no total: only the time so far


def test_a_quick_loop_shows_nothing_and_a_slow_one_shows_one_line_updated_in_place(notebook, monkeypatch):
    assert list(quiet.track(range(4), "generating", unit="batches")) == [0, 1, 2, 3]
    assert notebook == []  # over in a blink: not a single output
    monkeypatch.setattr(quiet, "SHOW_AFTER_S", 0.0)  # every loop is "slow"
    monkeypatch.setattr(quiet, "REDRAW_S", 0.0)
    list(quiet.track(range(3), "generating", unit="batches"))
    assert notebook[0] == ("display", "generating: 0/3 batches after 0 s")
    assert [kind for kind, _ in notebook[1:]] == ["update"] * (len(notebook) - 1)  # one output, rewritten
    assert notebook[-1] == ("update", "")  # quicker than LONG_S: cleared, no frozen bar
    notebook.clear()
    monkeypatch.setattr(quiet, "LONG_S", 0.0)
    list(quiet.track(range(3), "generating", unit="batches"))
    assert notebook[-1][1].startswith("generating: 3/3 batches in")  # a long one leaves one summary line
    notebook.clear()
    assert list(quiet.track(range(3), "generating", show=False)) == [0, 1, 2] and notebook == []


def test_outside_a_notebook_the_same_line_is_rewritten_on_stderr_and_cleared(capsys, monkeypatch):
    monkeypatch.setattr(quiet, "SHOW_AFTER_S", 0.0)
    redirected = quiet.Line(file=io.StringIO())  # a log file: no rewrites piling up, only the summary
    redirected.show("perplexity: 1/3 batches", force=True)
    redirected.end("perplexity: 3/3 batches in 9 s")
    assert redirected.file.getvalue() == "perplexity: 3/3 batches in 9 s\n"
    monkeypatch.setattr(quiet.Line, "_in_place", lambda line: True)  # a terminal
    assert list(quiet.track(range(3), "perplexity", unit="batches")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert err.startswith("\rperplexity: 0/3 batches after 0 s") and err.endswith("\r") and "\n" not in err
    line = quiet.Line(file=io.StringIO())
    line.show("a long first text")
    line.show("short", force=True)
    line.end("done in 9 s")
    assert line.file.getvalue() == ("\ra long first text\rshort" + " " * 12 + "\r" + " " * 5 + "\rdone in 9 s\n")


def test_a_rounds_display_and_a_loops_display_are_the_same_line(notebook, monkeypatch):
    from ftlab.round.progress import RoundProgress

    drawn = []
    original = quiet.Line.show

    def show(self, text, force=False):
        drawn.append(text)
        original(self, text, force)

    monkeypatch.setattr(quiet.Line, "show", show)
    state = SimpleNamespace(global_step=0, max_steps=4)
    progress = RoundProgress()
    progress.on_train_begin(None, state, None)
    for step in range(1, 5):
        state.global_step = step
        progress.on_step_end(None, state, None)
    progress.on_train_end(None, state, None)
    assert drawn[0].startswith("training: step 0/4") and drawn[-1].startswith("4 steps in")
    assert notebook[0][0] == "display" and all(kind == "update" for kind, _ in notebook[1:])
    assert notebook[-1] == ("update", drawn[-1])  # the round's summary, in the output its live line used


def test_generate_and_perplexity_follow_the_one_rule(tiny, notebook, monkeypatch):
    import ftlab

    model, tokenizer = tiny
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    monkeypatch.setattr(quiet, "SHOW_AFTER_S", 1e9)  # quick, whatever the machine's load: nothing
    ftlab.evaluation.answers(model, tokenizer, ["hi"], max_new_tokens=2)
    ftlab.evaluation.perplexity(model, tokenizer, rows)
    assert notebook == []
    monkeypatch.setattr(quiet, "SHOW_AFTER_S", 0.0)  # one slow batch each: both show a line (no batch count says no)
    ftlab.evaluation.answers(model, tokenizer, ["hi"], max_new_tokens=2)
    ftlab.evaluation.perplexity(model, tokenizer, rows)
    shown = [text for kind, text in notebook if kind == "display"]
    assert [text.split(":")[0] for text in shown] == ["generating", "perplexity"]
    notebook.clear()
    ftlab.evaluation.answers(model, tokenizer, ["hi"], max_new_tokens=2, progress=False)
    assert notebook == []


def test_ftlab_train_and_demo_print_one_line_per_evaluation():
    from ftlab.round.progress import LossLines

    out = io.StringIO()
    lines = LossLines(out)
    args = SimpleNamespace(eval_strategy="steps")
    lines.on_log(args, SimpleNamespace(global_step=0, max_steps=0), None, logs={"eval_loss": 4.88})
    for step in (5, 10):
        state = SimpleNamespace(global_step=step, max_steps=10)
        lines.on_log(args, state, None, logs={"loss": 1 / step, "entropy": 0.9})
        lines.on_log(args, state, None, logs={"eval_loss": 2 / step})
    shown = out.getvalue().splitlines()
    assert shown[0] == "  before training: eval loss 4.880"
    assert [line.split(" (")[0] for line in shown[1:]] == ["  step    5/10: train loss 0.200, eval loss 0.400",
                                                          "  step   10/10: train loss 0.100, eval loss 0.200"]
    assert LossLines.replaces_progress  # the trainer's own bars and printer are dropped beside it


def test_a_script_prints_ftlabs_lines_not_the_trainers_dictionaries_and_bars(tiny_path, greet_data, tmp_path, capfd,
                                                                            monkeypatch):
    """A round outside a notebook (this test process is one, as a script is): ftlab's lines on stdout, none of
    TRL's metric dictionaries or tqdm bars on stdout or stderr, for a lab round and for ``train_round`` alone."""
    import ftlab
    from ftlab.config import RoundConfig
    from ftlab.round.progress import KEEP_TRAINERS

    config = RoundConfig.preset("cpu-tiny", max_steps=4, eval_steps=2, logging_steps=2)
    run = ftlab.Lab(tmp_path / "lab").train(config, *ftlab.tiny_model(path=tiny_path), *greet_data, samples=0)
    ftlab.train_round(config, *ftlab.tiny_model(path=tiny_path), greet_data[0], output_dir=str(tmp_path / "plain"))
    out, err = capfd.readouterr()
    assert run.status == "succeeded"
    lines = out.splitlines()
    assert "  before training: eval loss" in out and any(line.startswith("  step    4/4: train loss") for line in lines)
    assert sum(line.startswith("  step    4/4: train loss") for line in lines) == 2  # the lab's round, then the plain one
    for noise in ("{'loss'", "{'eval_loss'", "{'train_runtime'", "it/s]", "s/it]"):
        assert noise not in out and noise not in err, noise
    # the round's own stdout.log holds the same lines, not the trainer's
    assert "eval loss" in (run.path / "stdout.log").read_text(encoding="utf-8")
    # FTLAB_TRAINER_PROGRESS=1 (ftlab train --verbose): the trainer's own dictionaries, as asked
    monkeypatch.setenv(KEEP_TRAINERS, "1")
    ftlab.train_round(RoundConfig.preset("cpu-tiny", max_steps=2, logging_steps=1), *ftlab.tiny_model(path=tiny_path),
                      greet_data[0], output_dir=str(tmp_path / "verbose"))
    assert "{'loss'" in capfd.readouterr().out
