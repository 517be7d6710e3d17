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
    from ftlab.lab.widgets import Panel

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

    from ftlab.lab.widgets import Compare

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
    from ftlab.lab.widgets import Compare

    view = Compare(ftlab.Lab(tmp_path / "empty"))
    assert "no rounds yet" in view.notes.value and "lab.train" in view.notes.value


# ------------------------------------------------------------------------------------------ side by side
@pytest.fixture(scope="module")
def three_rounds(tiny_path, greet_data, tmp_path_factory):
    """Rounds of micro-batch 4 and 8 (same steps), and one that failed (a layer the model lacks)."""
    import ftlab

    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    lab = ftlab.Lab(tmp_path_factory.mktemp("side-lab"))
    train, eval = greet_data
    short = dict(max_steps=6, eval_steps=None, logging_steps=2, learning_rate=1e-2, gradient_accumulation_steps=1)
    for batch in (4, 8):
        lab.train(ftlab.RoundConfig.preset("cpu-tiny", batch_size=batch, **short), model, tokenizer, train,
                  eval[:4], name=f"batch {batch}", samples=0)
    lab.train(ftlab.RoundConfig.preset("cpu-tiny", target_modules=("no_such_proj",), **short), model, tokenizer,
              train, eval[:4], name="broken", samples=0)
    return lab, model, tokenizer


def test_chat_compare_answers_from_each_rounds_adapter_over_one_untouched_base(three_rounds, tiny_path):
    from peft import PeftModel

    import ftlab
    from ftlab.evaluation.generation import generate
    from ftlab.lab.widgets import Compare

    lab, model, tokenizer = three_rounds
    before = checksums(model)
    assert all(p.requires_grad for p in model.parameters())  # as loaded, after three rounds trained over it
    prompt = "Greet Ada politely."
    view = Compare(lab, model, tokenizer)
    view.choose.value = (1, 2, 3)
    said = view.ask(prompt)
    assert list(said) == ["base model", "round 1 (batch 4)", "round 2 (batch 8)", "round 3 (broken)"]
    assert "no adapter" in said["round 3 (broken)"] and "failed" in said["round 3 (broken)"]
    assert "<table>" in view.answers.value and "round 2 (batch 8)" in view.answers.value

    def alone(adapter_dir=None):  # the same prompt, each model loaded on its own
        fresh, _ = ftlab.tiny_model(path=tiny_path)
        if adapter_dir is not None:
            fresh = PeftModel.from_pretrained(fresh, str(adapter_dir))
        return generate(fresh, tokenizer, [prompt], "eval", 64, progress=False)[0].text

    assert said["base model"].text == alone()
    for label, id in (("round 1 (batch 4)", 1), ("round 2 (batch 8)", 2)):
        assert said[label].text == alone(lab.round(id).adapter_dir), label  # its own adapter, switched in
    assert said["round 1 (batch 4)"].text != said["base model"].text  # the adapters change the answer here
    assert checksums(model) == before and not any("lora_" in n for n, _ in model.named_modules())
    assert all(p.requires_grad for p in model.parameters())  # PEFT froze the adapters' tree, not the base


def test_chat_compare_refuses_a_base_the_rounds_were_not_trained_on(three_rounds):
    from ftlab.lab.widgets import Compare

    lab, model, tokenizer = three_rounds
    name, model.name_or_path = model.name_or_path, "someone/else"
    try:
        view = Compare(lab, model, tokenizer)
        assert view.ask("Hello") == {} and "trained on 'tiny'" in view.answers.value
        assert view.ask("  ") == {} and "Write a prompt" in view.answers.value
    finally:
        model.name_or_path = name  # the fixture's model is shared


def test_curves_go_by_tokens_seen_when_batch_sizes_differ(three_rounds):
    import matplotlib.pyplot as plt

    from ftlab.lab.answers_and_curves import curve, plot_curves, tokens_per_step_differ

    lab, _, _ = three_rounds
    small, big = lab.round(1), lab.round(2)
    assert tokens_per_step_differ([small, big]) and not tokens_per_step_differ([small, small])
    (steps_small, _), (steps_big, _) = small.curve(), big.curve()
    assert steps_small == steps_big  # the same steps...
    (seen_small, _), (seen_big, _) = curve(small, by="tokens"), curve(big, by="tokens")
    assert len(seen_small) == len(steps_small) and seen_small == sorted(seen_small) and seen_small[0] > 0
    assert 1.6 < seen_big[-1] / seen_small[-1] < 2.4  # ...but twice the rows per step: about twice the tokens
    ax = plot_curves([small, big])
    assert ax.get_xlabel().startswith("input tokens seen") and "batch sizes differ" in ax.get_title()
    assert list(ax.lines[0].get_xdata()) == seen_small
    assert plot_curves([small], plt.subplots()[1]).get_xlabel() == "optimiser step"
    assert plot_curves([small, big], plt.subplots()[1], by="step").get_xlabel() == "optimiser step"
    from ftlab.lab.widgets import Compare

    view = Compare(lab)  # the view picks tokens seen by itself for these two, and steps when asked
    view.choose.value = (1, 2)
    table = lab.table(baseline=1).loc[[1, 2]]
    assert view.figure([small, big], table).axes[0].get_xlabel().startswith("input tokens seen")
    view.axis.value = "step"
    assert view.figure([small, big], table).axes[0].get_xlabel() == "optimiser step"
    plt.close("all")


# ------------------------------------------------------------------------------------------ ipywidgets 7
def test_panel_and_compare_view_under_ipywidgets_7_as_colab_ships_it(tmp_path):
    """Colab preinstalls ipywidgets 7 (Kaggle 8, which the tests above run on): the same tests, on 7.7.1."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    old = tmp_path / "ipywidgets7"  # first on the path, so it wins over the installed 8; no deps: the rest is here
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(old),
                          "ipywidgets==7.7.1", "ipython-genutils==0.2.0"], capture_output=True, text=True)
    if pip.returncode:
        pytest.skip(f"ipywidgets 7 could not be installed here (no package index?): {pip.stderr[-300:]}")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(old), str(root), os.environ.get("PYTHONPATH", "")])}
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"], env=env,
                             capture_output=True, text=True)
    assert version.stdout.strip() == "7.7.1", version.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                            str(tmp_path / "runs"), f"{root / 'tests' / 'test_widgets.py'}",
                            "-k", "train_button or refused or empty_lab or chat_compare_answers"],
                           env=env, capture_output=True, text=True, cwd=root)
    assert tests.returncode == 0 and "4 passed" in tests.stdout, tests.stdout[-3000:] + tests.stderr[-2000:]
