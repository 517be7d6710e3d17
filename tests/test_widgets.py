"""The widget panel and compare view driven headless: set values, click, read the lab."""

import hashlib
import time

import pytest

pytest.importorskip("ipywidgets")


def checksums(model):
    return {k: hashlib.sha1(v.detach().cpu().numpy().tobytes()).hexdigest() for k, v in model.state_dict().items()}


@pytest.fixture
def panel(tiny, greet_data, tmp_path):
    import ftlab
    from ftlab.widgets import Panel

    model, tokenizer = tiny
    train, eval = greet_data
    return Panel(ftlab.Lab(tmp_path / "lab"), model, tokenizer, train, eval[:4], samples=0)


def test_train_button_trains_a_round_with_exactly_the_knobs_set_and_keeps_the_base(panel):
    before = checksums(panel.model)
    for rank, lr in ((4, 2e-3), (8, 5e-3), (4, 1e-2)):
        panel.max_steps.value = 6
        panel.lora_r.value, panel.learning_rate.value, panel.lora_dropout.value = rank, lr, 0.1
        panel.targets.value = "attention"
        panel.train_button.click()
        panel.wait(120)
        round_ = panel.last_round
        assert round_.status == "succeeded", round_.verdict()
        knobs = round_.config
        assert (knobs.lora_r, knobs.max_steps, knobs.lora_dropout) == (rank, 6, 0.1)
        assert knobs.learning_rate == pytest.approx(lr, rel=1e-2)
        assert tuple(knobs.target_modules) == ("q_proj", "k_proj", "v_proj", "o_proj")
        assert f"lora_r={rank}" in panel.code.value
    assert len(panel.lab.rounds()) == 3
    assert checksums(panel.model) == before  # three rounds, the base weights untouched

    from ftlab.widgets import Compare

    view = Compare(panel.lab)
    assert view.choose.value == (1, 2, 3) and view.notes.value == ""  # all succeeded: no advice to show
    assert len(view.table.outputs) == 1 and len(view.plot.outputs) == 1


def test_stop_leaves_an_interrupted_round_that_lab_resume_finishes(panel):
    panel.max_steps.value = 80
    panel.train_button.click()
    deadline = time.monotonic() + 60
    while panel.progress.value < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    panel.train_button.click()  # Train while running: refused, said so
    assert "already running" in panel.message.value
    panel.stop_button.click()
    panel.wait(60)
    round_ = panel.lab.rounds()[-1]
    assert round_.status == "interrupted", round_.verdict()
    assert len(panel.lab.rounds()) == 1
    finished = panel.lab.resume(round_.id, panel.model, panel.tokenizer, samples=0)
    assert finished.status == "succeeded", finished.verdict()
    assert finished.record["attempts"][-1]["from_checkpoint"], "Stop should leave a checkpoint to resume from"
    assert finished.metrics["steps"] == 80


def test_a_knob_refused_by_roundconfig_is_shown_in_the_panel_not_raised(panel):
    panel.batch_size.value = 0  # a bounded widget refuses it itself
    assert panel.batch_size.value >= 1
    panel.max_steps.value = 0  # the widget allows it (-1 means epochs); RoundConfig refuses it
    panel.train_button.click()
    assert "not make a valid round" in panel.message.value and "max_steps" in panel.message.value
    assert not panel.running and panel.lab.rounds() == []


def test_compare_view_on_an_empty_lab_says_how_to_train_the_first_round(tmp_path):
    import ftlab
    from ftlab.widgets import Compare

    view = Compare(ftlab.Lab(tmp_path / "empty"))
    assert "no rounds yet" in view.notes.value and "lab.train" in view.notes.value
