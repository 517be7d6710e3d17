"""A round's inputs as one object (``RoundInputs``): built once at the lab's door and carried whole to the
record, training and the samples; read once for every round of a sweep; given back by ``rerun`` and
``resume``, rebuilt from the record; and nothing the caller gave is copied or changed.

Rounds train ftlab's tiny model for a few steps on the CPU.
"""

import copy
import dataclasses

import pytest
import torch
from transformers import TrainerCallback

import ftlab
from ftlab.config import RoundConfig
from ftlab.data.splits import fingerprint
from ftlab.lab import RoundInputs
from ftlab.lab.materials import template_text
from ftlab.templates.template import Template

SHORT = dict(max_steps=4, eval_steps=2, logging_steps=2)


@pytest.fixture
def conversions(monkeypatch):
    """Every conversion of a split into chat rows (``ftlab.data.load``'s one pass over a source), as it happens."""
    from ftlab.data import loading

    seen = []
    real = loading._inspect
    monkeypatch.setattr(loading, "_inspect", lambda source, *a, **k: seen.append(source) or real(source, *a, **k))
    return seen


def test_the_inputs_are_built_once_and_carried_whole_to_the_record_training_and_samples(
        tmp_path, tiny_path, greet_data, monkeypatch):
    import ftlab.lab.book as book

    seen = {}

    def spy(name, real, position):
        def called(*args, **kwargs):
            seen.setdefault(name, []).append(args[position])
            return real(*args, **kwargs)
        return called

    monkeypatch.setattr(book, "open_round", spy("open_round", book.open_round, 2))
    monkeypatch.setattr(book, "record_outcome", spy("record_outcome", book.record_outcome, 4))
    real_train_round = book.train_round
    monkeypatch.setattr(book, "train_round", lambda *a, **k: seen.setdefault("train_round", []).append((a, k))
                        or real_train_round(*a, **k))
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    train, evaluation = greet_data
    round_ = ftlab.Lab(tmp_path / "lab").train(RoundConfig.preset("cpu-tiny", **SHORT), model, tokenizer, train,
                                               evaluation, samples=2)
    assert round_.status == "succeeded", round_.verdict()
    inputs = round_.inputs
    assert isinstance(inputs, RoundInputs)
    assert seen["open_round"] == [inputs] and seen["record_outcome"] == [inputs]  # the same object, not rebuilt
    ((args, kwargs),) = seen["train_round"]
    assert args[1] is model and args[2] is tokenizer and kwargs["template"] is None  # held as given: no copy
    assert args[3].dataset is inputs.train.dataset and args[4].dataset is inputs.eval.dataset  # converted once
    recorded = round_.record["data"]
    assert recorded["train"]["fingerprint"] == inputs.train.fingerprint == fingerprint(train)
    assert recorded["eval"]["fingerprint"] == inputs.eval.fingerprint == fingerprint(evaluation)
    assert round_.record["base_model"] == inputs.base_model == "tiny"
    assert len(round_.samples()) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.train = []
    assert f"{len(train)} rows ({inputs.train.fingerprint})" in repr(inputs)
    help_of = {f.name: f.metadata["help"] for f in dataclasses.fields(RoundInputs)}
    assert set(help_of) == {"model", "tokenizer", "train", "eval", "template", "base_model"} and all(help_of.values())


def test_inputs_built_once_serve_several_rounds_and_a_sweep_reads_its_rows_once(
        tmp_path, tiny_path, greet_data, conversions):
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    train, evaluation = greet_data[0], greet_data[1][:4]
    inputs = RoundInputs(model, tokenizer, train, evaluation)
    assert len(conversions) == 2  # train and eval, converted here
    lab = ftlab.Lab(tmp_path / "lab")
    config = RoundConfig.preset("cpu-tiny", **SHORT)
    first = lab.train(config, inputs, name="first", samples=2)
    second = lab.train(dataclasses.replace(config, learning_rate=1e-2), inputs, name="second", samples=2)
    assert first.status == second.status == "succeeded", second.verdict()
    assert len(conversions) == 2  # neither round converted them again
    assert first.record["data"] == second.record["data"] and second.inputs is inputs
    with pytest.raises(ValueError, match="either the inputs or model, tokenizer, train, eval"):
        lab.train(config, inputs, tokenizer, train)
    with pytest.raises(ValueError, match="needs a model and its tokenizer"):
        lab.train(config, model, None, train)

    conversions.clear()
    result = lab.sweep(config, {"learning_rate": [3e-3, 1e-2]}, model, tokenizer, train, evaluation, samples=0)
    assert [p.status for p in result.points] == ["succeeded"] * 3
    assert len(conversions) == 2  # three rounds, each split converted once for all of them


class InterruptAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_rerun_and_resume_give_back_the_inputs_rebuilt_from_the_record(tmp_path, tiny_path, greet_data):
    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    train, evaluation = greet_data[0], greet_data[1][:4]
    lab = ftlab.Lab(tmp_path / "lab")
    alpaca = Template.alpaca(tokenizer)  # not the default, so that the rebuilt template shows
    with pytest.raises(KeyboardInterrupt):
        lab.train(RoundConfig.preset("cpu-tiny", max_steps=6, save_steps=2, eval_steps=None), model, tokenizer,
                  train, evaluation, template=alpaca, samples=0, callbacks=[InterruptAt(3)])
    given = lab.round(1)
    assert given.status == "interrupted"

    def same_as_recorded(inputs, round_):
        assert isinstance(inputs, RoundInputs)
        for split in ("train", "eval"):
            assert getattr(inputs, split).fingerprint == round_.record["data"][split]["fingerprint"], split
        assert template_text(inputs.tokenizer, inputs.template) == template_text(tokenizer, alpaca)
        assert inputs.base_model == round_.record["base_model"] == "tiny"

    resumed = lab.resume(1, model, tokenizer, samples=0)  # the model given; the rows read back from the record
    assert resumed.status == "succeeded", resumed.verdict()
    same_as_recorded(resumed.inputs, given)
    assert resumed.inputs.model is model and resumed.inputs.tokenizer is tokenizer

    again = lab.rerun(1, samples=0)  # model and rows reloaded from the record, as after a restart
    assert again.status == "succeeded", again.verdict()
    same_as_recorded(again.inputs, given)
    assert again.inputs.model is not model and resumed.inputs is None  # only the newest round holds its inputs
    assert again.record["data"]["train"]["fingerprint"] == given.record["data"]["train"]["fingerprint"]


def test_nothing_the_caller_gave_is_copied_or_changed(tmp_path, tiny_path, greet_data):
    from datasets import Dataset

    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    # Alpaca rows and a Dataset: the lab converts both to chat rows for training, and must not write that back
    train = [{"instruction": r["messages"][0]["content"], "output": r["messages"][1]["content"]}
             for r in greet_data[0][:64]]
    evaluation = Dataset.from_list(greet_data[1][:4])
    rows_before, eval_before = copy.deepcopy(train), evaluation.to_list()
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    said_before = (tokenizer.chat_template, tokenizer.padding_side, len(tokenizer))
    config = RoundConfig.preset("cpu-tiny", **SHORT)
    knobs_before = config.to_dict()

    round_ = ftlab.Lab(tmp_path / "lab").train(config, model, tokenizer, train, evaluation, samples=2)
    assert round_.status == "succeeded", round_.verdict()
    assert train == rows_before and evaluation.to_list() == eval_before
    assert round_.inputs.train is not train and list(round_.inputs.train) == rows_before  # the rows as given
    assert round_.inputs.model is model and round_.inputs.tokenizer is tokenizer  # held, not copied
    assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert (tokenizer.chat_template, tokenizer.padding_side, len(tokenizer)) == said_before
    assert config.to_dict() == knobs_before
