"""The lab book: the table, baseline marks, not-comparable warnings, repeats, failures with advice, secrets.

Rounds train ftlab's tiny model for a few steps; the table and comparison tests share one small lab.
"""

import json
import math
import os
import subprocess
import sys
import warnings

import pytest
import torch
from transformers import TrainerCallback

import ftlab
from ftlab.config import RoundConfig
from ftlab.data import instructions, split_train_eval
from ftlab.lab import NotComparableWarning
from ftlab.lab.provenance import process_alive
from ftlab.lab.storage import seconds_between
from ftlab.lab.watchers import DivergenceGuard
from ftlab.templates.template import CHAT_TEMPLATE

SHORT = dict(max_steps=20, eval_steps=10, logging_steps=5)


class AtStep(TrainerCallback):
    """Runs ``action(model)`` at the end of optimiser step ``step``: a fault injected mid-round."""

    def __init__(self, step, action):
        self.step, self.action = step, action

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            self.action(model)


def files_of(folder):
    return [p for p in folder.rglob("*") if p.is_file()]


def assert_every_file_parses(folder):
    """Every JSON / JSONL file parses and every text file decodes; the lab's own JSON is strict (no NaN).

    The trainer's files (log_history.json, trainer_state.json) may hold NaN, as Python's json writes it.
    """
    def no_nan(constant):
        raise ValueError(f"{constant} is not JSON")

    for path in files_of(folder):
        strict = {"parse_constant": no_nan} if path.name in ("round.json", "log.jsonl", "samples.json") else {}
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"), **strict)
        elif path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line, **strict)
        elif path.suffix in (".log", ".txt", ".jinja", ".md"):
            path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ a shared lab
@pytest.fixture(scope="module")
def book(tmp_path_factory, tiny_path, greet_data):
    """Five rounds: a baseline, one knob changed, two knobs, other eval data, other template and base; a repeat."""
    lab = ftlab.Lab(tmp_path_factory.mktemp("lab"))
    train, evaluation = greet_data
    other_eval = split_train_eval(instructions(600, "greet_politely", seed=2), eval_size=12, seed=2)[1]

    def round_(name, eval_rows=evaluation, template=None, base_model=None, **knobs):
        model, tokenizer = ftlab.tiny_model(path=tiny_path)
        if template:
            tokenizer.chat_template = template
        return lab.train(RoundConfig.preset("cpu-tiny", **SHORT, **knobs), model, tokenizer, train, eval_rows,
                         name=name, base_model=base_model, samples=2)

    round_("baseline")
    round_("lower lr", learning_rate=5e-4)
    round_("lr and rank", learning_rate=5e-4, lora_r=8)
    with pytest.warns(UserWarning, match="share their prompt with train rows"):
        round_("other eval set", eval_rows=other_eval)  # drawn apart from train: some of its prompts are in train
    round_("other template and base", template=CHAT_TEMPLATE + "{# v2 #}", base_model="another/base")
    lab.rerun(1)
    return lab


def test_each_round_has_its_folder_with_the_whole_record(book):
    rounds = book.rounds()
    assert [r.id for r in rounds] == [1, 2, 3, 4, 5, 6]
    first = rounds[0]
    record = first.record
    assert record["status"] == "succeeded" and first.status == "succeeded"
    assert record["config"] == RoundConfig.preset("cpu-tiny", **SHORT, save_steps=10).to_dict()
    assert record["versions"]["ftlab"] == ftlab.__version__ and record["versions"]["torch"] == torch.__version__
    assert record["hardware"]["cpu_count"] == os.cpu_count() and record["seed"] == 42
    assert len(record["data"]["train"]["fingerprint"]) == 16 and record["template"]["ftlab"] is True
    assert record["started_at"] <= record["ended_at"] and record["metrics"]["steps"] == 20
    assert math.isclose(record["metrics"]["perplexity"], math.exp(record["metrics"]["eval_loss"]))

    steps, losses = first.curve("loss")
    assert steps[0] == 1 and steps[-1] == 20 and len(losses) == len(steps)
    logged = [line for line in first.logs() if "loss" in line]
    assert all({"loss", "learning_rate", "grad_norm"} <= set(line) for line in logged)
    assert "Trainable parameters" in (first.path / "stdout.log").read_text()
    assert len(first.samples()) == 2 and {"prompt", "reference", "prediction"} <= set(first.samples()[0])
    assert (first.adapter_dir / "adapter_model.safetensors").exists()
    assert book.round("baseline").id == 1 and "succeeded" in repr(first)
    for r in rounds:
        assert_every_file_parses(r.path)


def test_table_has_knobs_status_metrics_and_marks_what_differs_from_the_baseline(book, tmp_path):
    table = book.table()
    for column in ("name", "status", "base model", "learning_rate", "num_train_epochs", "batch_size", "lora_r",
                   "seed", "train loss", "eval loss", "perplexity", "wall time (s)", "failure", "changed"):
        assert column in table.columns, column
    assert list(table.index) == [1, 2, 3, 4, 5, 6]
    assert table.loc[1, "status"] == "✅ succeeded" and table.loc[1, "changed"] == "(baseline)"
    assert table.loc[2, "changed"] == "learning_rate"
    assert table.loc[3, "changed"] == "learning_rate, lora_r"
    assert table.loc[4, "changed"] == "eval data"
    assert table.loc[5, "changed"] == "template, base model"
    assert table.loc[3, "eval loss"] == book.round(3).metrics["eval_loss"]
    assert {(2, "learning_rate"), (3, "learning_rate"), (3, "lora_r"), (6, "seed"), (5, "base model")} == {
        tuple(d) for d in table.attrs["differs"]}
    assert "save_steps" not in table.columns  # bookkeeping, not a knob of the experiment

    other = book.table(baseline=3)
    assert other.loc[3, "changed"] == "(baseline)" and other.loc[1, "changed"] == "learning_rate, lora_r"

    text = book.to_markdown(tmp_path / "lab.md")
    row_3 = next(line for line in text.splitlines() if line.startswith("| 3 |"))
    assert "**0.0005**" in row_3 and "**8**" in row_3 and (tmp_path / "lab.md").read_text() == text
    book.to_csv(tmp_path / "lab.csv")
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "lab.csv")["id"]) == [1, 2, 3, 4, 5, 6]
    html = book.table(styled=True).to_html()
    highlighted = html.split("background-color: #ffe08a")[0].rsplit("}", 1)[-1]  # the selectors of that CSS rule
    assert highlighted.count("#T_") == 5 and "_row2_col" in highlighted


def test_a_repeat_gets_a_new_seed_and_the_table_shows_the_spread(book):
    repeat = book.round(6)
    assert repeat.record["repeat_of"] == 1 and repeat.record["seed"] == 43 and repeat.name == "baseline"
    assert repeat.record["data"] == book.round(1).record["data"]  # reloaded from the kept copy, unchanged
    table = book.table()
    losses = [table.loc[1, "eval loss"], table.loc[6, "eval loss"]]
    assert losses[0] != losses[1]  # another seed, another round
    mean = sum(losses) / 2
    assert str(table.loc[1, "eval loss over repeats"]).startswith(f"{mean:.4g} ± ")
    assert str(table.loc[1, "eval loss over repeats"]).endswith("(n=2)") and table.loc[2, "eval loss over repeats"] == ""


def test_compare_warns_when_rounds_are_not_comparable(book):
    def warned(ids):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            comparison = book.compare(ids)
        messages = [str(w.message) for w in caught if issubclass(w.category, NotComparableWarning)]
        assert messages == comparison.warnings
        return " ".join(messages), comparison

    quiet, comparison = warned([1, 2])
    assert quiet == "" and list(comparison.table.index) == [1, 2]
    assert len(comparison.ax.get_lines()) == 4  # a train and an eval curve per round
    assert "2 knobs (learning_rate, lora_r)" in warned([1, 3])[0]
    assert "evaluated on different data" in warned([1, 4])[0]
    assert book.round(4).record["data"]["eval"]["overlap"]["rows"] > 0 and "overlap" not in book.round(1).record["data"]["eval"]
    text = warned([1, 5])[0]
    assert "different chat templates" in text and "different base models (tiny vs another/base)" in text
    assert warned([1, 6])[0] == ""  # a repeat differs in the seed only


def test_ftlab_runs_prints_the_table_without_torch(book):
    code = ("import sys; from ftlab.cli import main; main(['runs', sys.argv[1], '--baseline', '1']); "
            "print('heavy:', [m for m in ('torch', 'transformers', 'trl') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(book.path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "heavy: []" in out.stdout
    assert "| 3 | lr and rank | ✅ succeeded |" in out.stdout and "**0.0005**" in out.stdout


# ------------------------------------------------------------------------------------------ failures
def test_out_of_memory_in_a_step_fails_with_advice(tiny, greet_data, tmp_path):
    def oom(model):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 14.75 GiB total)")

    lab = ftlab.Lab(tmp_path)
    config = RoundConfig.preset("cpu-tiny", batch_size=8, gradient_accumulation_steps=2, **SHORT)  # the T4's batches
    run = lab.train(config, *tiny, *greet_data, callbacks=[AtStep(2, oom)])
    assert run.status == "failed" and run.failure["kind"] == "out of memory"
    advice = run.failure["advice"]
    for hint in ("batch_size 8 -> 4", "gradient_accumulation_steps 2 -> 4", "max_length 256 -> 128",
                 "gradient_checkpointing=True", "quantization='4bit'"):
        assert hint in advice, hint
    assert "Tried to allocate" in (run.path / "traceback.txt").read_text()
    assert lab.table().loc[1, "failure"].startswith("out of memory: OutOfMemoryError")
    assert_every_file_parses(run.path)


def test_nan_weights_stop_the_round_within_a_step_as_diverged(tiny, greet_data, tmp_path):
    # lr 0.9 does not blow up the tiny model (RMSNorm and gradient clipping hold it: loss 6.7 -> 9.4 at
    # worst, measured), so the NaN is injected as a too-large step would leave it: in a trainable weight.
    def poison(model):
        next(p for n, p in model.named_parameters() if "lora_B" in n).data.fill_(float("nan"))

    run = ftlab.Lab(tmp_path).train(RoundConfig.preset("cpu-tiny", **SHORT), *tiny, *greet_data,
                                    callbacks=[AtStep(4, poison)])
    assert run.status == "diverged" and run.failure["kind"] == "divergence"
    assert 4 <= run.record["stopped_at_step"] <= 5 and run.metrics["steps"] <= 6
    assert "NaN" in run.failure["message"] and "0.0001 instead of 0.001" in run.failure["advice"]
    assert "Stopping the round" in (run.path / "stderr.log").read_text()
    assert_every_file_parses(run.path)


def test_the_guard_stops_exploding_loss_after_a_few_logs_but_not_one_spike():
    class Control:
        should_training_stop = False

    class State:
        global_step = 0

    def feed(losses):
        guard, control, state = DivergenceGuard(), Control(), State()
        for step, loss in enumerate(losses, start=1):
            state.global_step = step
            guard.on_log(None, state, control, logs={"loss": loss})
            if control.should_training_stop:
                return step, guard.reason
        return None, None

    assert feed([2.0, 1.5, 7.0, 1.4, 1.3]) == (None, None)
    step, reason = feed([2.0, 1.5, 7.0, 9.0, 1.0])
    assert step == 4 and "exploded" in reason
    assert feed([2.0, float("inf")])[0] == 2


def test_a_bad_row_fails_as_data_format_naming_row_and_field(tiny, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]}]
    run = ftlab.Lab(tmp_path).train(RoundConfig.preset("cpu-tiny", **SHORT), *tiny, rows)
    assert run.status == "failed" and run.failure["kind"] == "data format"
    assert run.failure["findings"][0]["row"] == 2 and run.failure["findings"][0]["field"] == "messages[1].role"
    assert "row 2, field 'messages[1].role'" in run.failure["advice"]


def test_ctrl_c_is_recorded_as_interrupted_then_raised(tiny, greet_data, tmp_path):
    def stop(model):
        raise KeyboardInterrupt

    lab = ftlab.Lab(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        lab.train(RoundConfig.preset("cpu-tiny", max_steps=20, save_steps=5), *tiny, *greet_data,
                  callbacks=[AtStep(7, stop)])
    run = lab.round(1)
    assert run.status == "interrupted" and "lab.resume(1) continues from checkpoint-5" in run.failure["advice"]


def test_a_round_on_another_machine_is_interrupted_once_its_heartbeat_is_stale():
    elsewhere = {"pid": 1, "host": "another-vm", "boot_time": 0, "started": 0}
    assert process_alive(elsewhere, "2000-01-01T00:00:00+00:00") is False
    from ftlab.lab.storage import now

    assert process_alive(elsewhere, now()) is True
    assert seconds_between("2000-01-01T00:00:00+00:00", "2000-01-01T00:01:00+00:00") == 60


# ------------------------------------------------------------------------------------------ secrets
def test_no_secret_lands_in_any_file_of_the_lab(tiny_path, greet_data, tmp_path, monkeypatch):
    token, wandb_key = "hf_testSECRET1234567890", "wandbSECRETkey0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("WANDB_API_KEY", wandb_key)
    leak = AtStep(3, lambda model: (print("token is", token), print(f"key={wandb_key}", file=sys.stderr)))

    def crash(model):
        raise RuntimeError(f"could not log in with {token}")

    lab = ftlab.Lab(tmp_path / "lab")
    done = lab.train(RoundConfig.preset("cpu-tiny", max_steps=10, save_steps=5), *ftlab.tiny_model(path=tiny_path),
                     *greet_data, name=f"probe {token}", notes=f"key {wandb_key}", callbacks=[leak])
    failed = lab.train(RoundConfig.preset("cpu-tiny", max_steps=10), *ftlab.tiny_model(path=tiny_path),
                       *greet_data, callbacks=[AtStep(2, crash)])
    assert done.status == "succeeded" and failed.status == "failed" and failed.failure["kind"] == "unknown"
    assert "token is [secret]" in (done.path / "stdout.log").read_text()
    assert "[secret]" in (failed.path / "traceback.txt").read_text() and done.name == "probe [secret]"
    checked = files_of(lab.path)
    assert len(checked) > 20  # records, logs, data, checkpoints, adapter
    for path in checked:
        content = path.read_bytes()
        for secret in (token, wandb_key):
            assert secret.encode() not in content, path


def test_default_lab_survives_the_platforms_disconnects(monkeypatch, capsys):
    monkeypatch.delenv("FTLAB_FAST", raising=False)  # under a test run (FTLAB_FAST=1) the lab is temporary
    monkeypatch.delenv("FTLAB_LAB", raising=False)
    monkeypatch.setattr("ftlab.lab.book.detect_platform", lambda: "kaggle")
    assert str(ftlab.Lab.default().path) == "/kaggle/working/ftlab-lab"
    monkeypatch.setattr("ftlab.lab.book.detect_platform", lambda: "colab")
    lab = ftlab.Lab.default()
    if not os.path.isdir("/content/drive/MyDrive"):
        assert str(lab.path) == "/content/ftlab-lab" and "drive.mount" in capsys.readouterr().out
    monkeypatch.setattr("ftlab.lab.book.detect_platform", lambda: "local")
    assert str(ftlab.Lab.default().path) == "lab"


# ------------------------------------------------------------------------------------------ trackers
def test_wandb_without_a_key_logs_offline_instead_of_prompting(monkeypatch, tmp_path, capsys):
    import importlib.util

    from ftlab.round.trackers import tracker_env

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else
                        real_find_spec(name, *a))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: never logged in
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with tracker_env("wandb"):
        assert os.environ["WANDB_MODE"] == "offline"
    assert os.environ["WANDB_MODE"] == "disabled" and "logging offline" in capsys.readouterr().out
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    with tracker_env("wandb"):
        assert os.environ["WANDB_MODE"] == "online"


def test_a_tracker_that_is_not_installed_fails_the_round_with_the_install_line(tiny, greet_data, tmp_path):
    import importlib.util

    if any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        pytest.skip("tensorboard is installed here")
    run = ftlab.Lab(tmp_path).train(RoundConfig.preset("cpu-tiny", **SHORT, report_to="tensorboard"), *tiny,
                                    *greet_data)
    assert run.status == "failed" and run.failure["kind"] == "configuration"
    assert "pip install tensorboard" in run.failure["message"]


def test_only_the_newest_round_keeps_its_model_in_memory(tmp_path, tiny_path):
    import gc
    import weakref

    lab = ftlab.Lab(tmp_path / "lab", keep_data=False)
    train, evaluation = split_train_eval(instructions(200, "greet_politely", seed=2), eval_size=8, seed=2)
    config = RoundConfig.preset("cpu-tiny", max_steps=4, eval_steps=2, save_steps=2)
    first = lab.train(config, *ftlab.tiny_model(path=tiny_path), train, evaluation, samples=0)
    watcher = weakref.ref(first.model)
    assert first.model is not None
    second = lab.train(config, *ftlab.tiny_model(path=tiny_path), train, evaluation, samples=0)
    gc.collect()
    assert first.model is None and watcher() is None and second.model is not None
    assert (first.path / "adapter" / "adapter_config.json").exists()


# ------------------------------------------------------------------------------------------ the lab's door
class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step


def test_a_data_file_is_read_once_and_checkpoints_follow_its_rows(tmp_path, tiny_path, monkeypatch):
    from ftlab.data import files as read

    path = tmp_path / "greetings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in instructions(2000, "greet_politely", seed=3)))
    reads = []
    real = read.read_file
    monkeypatch.setattr(read, "read_file", lambda *a, **k: reads.append(a) or real(*a, **k))
    monkeypatch.setattr("ftlab.data.loading.read_file", read.read_file)
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    config = RoundConfig.preset("cpu-tiny", max_steps=-1, num_train_epochs=1, batch_size=1, gradient_accumulation_steps=1,
                                eval_steps=None)
    round_ = ftlab.Lab(tmp_path / "lab").train(config, model, tokenizer, str(path), samples=0, callbacks=[StopAt(1)])
    assert round_.status == "succeeded", round_.verdict()
    assert len(reads) == 1  # loaded once, at the lab's door, and those rows carried down
    assert round_.config.save_steps == 200  # 2,000 steps: a tenth (capped at 200), not from len(str(path))
    assert round_.record["data"]["train"]["rows"] == 2000


def test_a_bad_row_in_a_data_file_fails_the_round_and_is_not_dropped_from_the_record(tmp_path, tiny_path):
    rows = instructions(20, "greet_politely", seed=3) + [{"messages": [{"role": "user", "content": "hi"}]}]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    lab = ftlab.Lab(tmp_path / "lab")
    round_ = lab.train(RoundConfig.preset("cpu-tiny", max_steps=2), model, tokenizer, str(path), samples=0)
    assert round_.status == "failed" and round_.failure["kind"] == "data format"
    assert round_.failure["findings"][0]["row"] == 21
    kept = round_.record["data"]["train"]
    assert "unreadable" in kept and "fingerprint" not in kept and "file" not in kept  # no cleaned copy
    with pytest.raises(ValueError, match="did not keep its train data"):
        lab.rerun(round_.id, model=model, tokenizer=tokenizer)


def test_what_ran_is_recorded_and_shown_with_each_substitution_marked(tmp_path, tiny_path, greet_data, capsys):
    # seed 002's knobs on a CPU: fp16, a paged optimiser, 4-bit asked of a model loaded without it; one rule for all
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    config = RoundConfig.preset("cpu-tiny", max_steps=2, optim="paged_adamw_8bit", precision="fp16",
                                quantization="4bit")
    lab = ftlab.Lab(tmp_path)
    round_ = lab.train(config, model, tokenizer, greet_data[0], samples=0)
    assert round_.status == "succeeded", round_.verdict()
    assert round_.record["config"]["optim"] == "paged_adamw_8bit"  # what was asked
    assert (round_.metrics["optimizer"], round_.metrics["precision"], round_.metrics["quantization"]) == (
        "adamw_torch", "fp32", None)  # what ran
    swaps = {s["knob"]: (s["asked"], s["used"]) for s in round_.record["substitutions"]}
    assert swaps == {"precision": ("fp16", "fp32"), "optim": ("paged_adamw_8bit", "adamw_torch"),
                     "quantization": ("4bit", None)}
    printed = capsys.readouterr().out
    assert "precision fp16 -> fp32" in printed and "optim paged_adamw_8bit -> adamw_torch" in printed
    row = lab.table().loc[round_.id]
    assert (row["optim"], row["precision"], row["quantization"]) == (
        "adamw_torch (asked paged_adamw_8bit)", "fp32 (asked fp16)", "none (asked 4bit)")
    assert "| fp32 (asked fp16) |" in lab.to_markdown()  # what `ftlab runs` prints
    plain = lab.train(RoundConfig.preset("cpu-tiny", max_steps=2), model, tokenizer, greet_data[0], samples=0)
    assert plain.record["substitutions"] == []
    assert {lab.table().loc[plain.id, k] for k in ("optim", "precision", "quantization")} == {
        "adamw_torch", "fp32", "none"}
    with pytest.warns(NotComparableWarning, match="3 knobs"):
        assert {"optim", "precision", "quantization"} <= set(lab.compare([round_.id, plain.id]).table.columns)


def test_eval_rows_that_share_a_prompt_with_train_are_warned_about_and_recorded(tmp_path, tiny_path, greet_data):
    train, eval = greet_data
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    config = RoundConfig.preset("cpu-tiny", max_steps=1, eval_steps=None)
    lab = ftlab.Lab(tmp_path)
    with pytest.warns(UserWarning, match=r"6 of 10 eval rows \(60%\) share their prompt with train rows \(first: eval row 5"):
        round_ = lab.train(config, model, tokenizer, train, eval[:4] + train[:6], samples=0)  # seed 000's overlap
    overlap = round_.record["data"]["eval"]["overlap"]
    assert overlap["rows"] == 6 and overlap["of"] == 10 and overlap["first"][0].startswith("eval row 5 = train row(s) 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clean = lab.train(config, model, tokenizer, train, eval[:4], samples=0)
    assert not [w for w in caught if "with train rows" in str(w.message)]
    assert "overlap" not in clean.record["data"]["eval"]


def test_each_data_set_is_converted_once_at_the_door_and_carried_down_to_training_and_samples(
        tmp_path, tiny_path, greet_data, monkeypatch):
    from ftlab.data import loading as loader

    train, eval = greet_data
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train))
    conversions = []
    real = loader._inspect
    monkeypatch.setattr(loader, "_inspect", lambda source, *a, **k: conversions.append(source) or real(source, *a, **k))
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    round_ = ftlab.Lab(tmp_path / "lab").train(RoundConfig.preset("cpu-tiny", max_steps=2), model, tokenizer,
                                               str(path), eval, samples=2)
    assert round_.status == "succeeded", round_.verdict()
    assert len(conversions) == 2  # a file and a list of rows: each converted once, not again in train_round or samples
    assert len(round_.samples()) == 2


# ------------------------------------------------------------------------------------------ scores and collapse
def test_scores_sit_beside_the_eval_loss_and_an_accuracy_collapse_is_flagged_with_advice(tmp_path, tiny_path,
                                                                                           greet_data):
    # seed 004: accuracy ~0.3 for most rounds, 0.0 at lr 1.5e-3 (r 32, alpha 128) while the loss stayed finite
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    lab = ftlab.Lab(tmp_path)
    train, eval = greet_data

    def round_(accuracy, **knobs):
        config = RoundConfig.preset("cpu-tiny", max_steps=2, eval_steps=None, **knobs)
        return lab.train(config, model, tokenizer, train, eval[:4], samples=0,
                         score=lambda model, tokenizer: {"exact_match": accuracy})

    first, second = round_(0.3), round_(0.31, learning_rate=3e-4)
    assert first.status == second.status == "succeeded"  # nothing to fall from in the first; 0.31 is no fall
    assert first.metrics["exact_match"] == 0.3 and first.scores == {"exact_match": 0.3}  # by name, as eval_loss is
    assert "exact match 0.3" in first.verdict()
    collapsed = round_(0.0, learning_rate=1.5e-3, lora_r=32, lora_alpha=128)
    assert collapsed.status == "collapsed" and collapsed.failure["kind"] == "accuracy collapse"
    assert "exact_match 0 where the other rounds on these eval rows reached 0.305 (median)" in collapsed.failure["message"]
    advice = collapsed.failure["advice"]
    assert "0.0005 instead of 0.0015" in advice  # the learning rate, a third
    assert "alpha / r = 128 / 32 = 4" in advice and "Lowering lora_alpha" in advice  # LoRA's scale read with it
    assert math.isfinite(collapsed.metrics["train_loss"]) and (collapsed.adapter_dir / "adapter_config.json").exists()
    table = lab.table()
    assert table.loc[collapsed.id, "status"] == "❌ collapsed" and table.loc[collapsed.id, "exact_match"] == 0.0
    assert table.loc[collapsed.id, "failure"].startswith("accuracy collapse: exact_match 0 ")
    assert json.loads((collapsed.path / "round.json").read_text())["status"] == "collapsed"
    assert lab.resume(collapsed.id).status == "collapsed"  # it trained to the end: nothing to resume
    clash = lab.train(RoundConfig.preset("cpu-tiny", max_steps=1), model, tokenizer, train, eval[:4], samples=0,
                      score=lambda model, tokenizer: {"eval_loss": 0.0})
    assert clash.status == "failed" and "'eval_loss'" in clash.failure["message"]  # would overwrite the lab's own
