"""suggest(): the fastest configuration that fits, never one that plan() says does not; the warning a round gives."""

import random

import pytest

from ftlab.config import RoundConfig
from ftlab.memory.estimate import plan
from ftlab.memory.shapes import PlanInputError, model_shape
from ftlab.memory.suggestions import suggest, warn_if_it_does_not_fit


def alpaca_like(rows=2000, seed=0):
    """Token counts shaped like Alpaca's rows under a chat template: most 100-400, a long tail to 1024."""
    rng = random.Random(seed)
    return [min(1024, max(20, int(rng.lognormvariate(5.2, 0.6)))) for _ in range(rows)]


@pytest.fixture(scope="module")
def tinyllama():
    return model_shape("TinyLlama/TinyLlama-1.1B-Chat-v1.0")


def test_tinyllama_at_alpaca_lengths_on_a_t4_gets_fp16_without_checkpointing(tinyllama):
    s = suggest(16, lengths=alpaca_like(), gpu="T4", model=tinyllama)
    assert s.knobs["quantization"] is None and s.knobs["gradient_checkpointing"] is False
    assert s.knobs["batch_size"] * s.knobs["gradient_accumulation_steps"] == 16
    qlora = [p for p in s.considered if p.settings["quantization"] == "4bit" and p.fits_with(0.1)]
    assert qlora and all(p.epoch_s > s.plan.epoch_s for p in qlora)
    config = s.config()
    assert config.batch_size == s.knobs["batch_size"] and config.gradient_checkpointing is False
    assert "Suggestion:" in repr(s)


@pytest.mark.parametrize("gpu", ["T4", "L4", 6, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_suggest_never_proposes_what_plan_says_does_not_fit(tinyllama, gpu, seed):
    lengths = alpaca_like(500, seed)
    s = suggest(32, lengths=lengths, gpu=gpu, model=tinyllama, margin=0.1)
    k = s.knobs
    padding = "padding_free" if k["padding_free"] else "group" if k["group_by_length"] else "pad"
    again = plan(tinyllama, quantization=k["quantization"], batch_size=k["batch_size"], max_length=k["max_length"],
                 gradient_checkpointing=k["gradient_checkpointing"], gpu=gpu, lengths=lengths, padding=padding,
                 gradient_accumulation_steps=k["gradient_accumulation_steps"])
    assert again.fits_with(0.1) and again.total_bytes == s.plan.total_bytes
    # and it is the fastest of those that fit
    assert all(p.epoch_s >= s.plan.epoch_s for p in s.considered if p.fits_with(0.1))


def test_when_nothing_fits_it_says_what_is_largest(tinyllama):
    with pytest.raises(PlanInputError, match="nothing fits.*largest term is"):
        suggest(8, lengths=[512] * 10, gpu=0.5, model=tinyllama)
    with pytest.raises(PlanInputError, match="lengths"):
        suggest(8, gpu="T4", model=tinyllama)


def test_a_round_that_will_not_fit_warns_naming_the_change(tiny):
    import warnings

    config = RoundConfig.preset("t4-lora", batch_size=16, max_length=2048, gradient_checkpointing=False)
    with pytest.warns(UserWarning, match="NOT to fit on the T4.*turn on gradient_checkpointing"):
        warn_if_it_does_not_fit(config, "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "Tesla T4", 14.74)
    model, _ = tiny  # a model object is sized from its own config
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_it_does_not_fit(RoundConfig.preset("cpu-tiny"), model, "Tesla T4", 14.74).fits
    with pytest.warns(UserWarning, match="CUDA context: use a GPU with more memory"):
        warn_if_it_does_not_fit(RoundConfig.preset("cpu-tiny"), model, None, 0.3)


def test_prepare_round_plans_on_a_gpu(tiny, greet_data, monkeypatch):
    import ftlab.round.train
    from ftlab.round.train import prepare_round
    from ftlab.templates.template import Template

    model, tokenizer = tiny
    monkeypatch.setattr(ftlab.round.train, "gpu_info", lambda: ("Tesla T4", 1, (7, 5), 0.3))  # a T4 with 0.3 GiB
    with pytest.warns(UserWarning, match="predicted NOT to fit on the T4"):
        prepare_round(RoundConfig.preset("cpu-tiny"), model, Template.chat(tokenizer), greet_data[0], None)


def test_the_t4_lora_preset_differs_from_suggest_for_the_reasons_chapter_02_gives():
    """The preset must fit any rows up to its max_length at micro-batch 8 (so it keeps checkpointing) and pads each
    batch; suggest knows the rows. Chapter 02 prints what each difference is worth."""
    from ftlab.memory.measured_runs import alpaca_lengths

    lengths = alpaca_lengths(20_000)
    preset = plan(config=RoundConfig.preset("t4-lora"), gpu="T4", lengths=lengths)
    chosen = suggest(effective_batch=16, lengths=lengths, gpu="T4")
    assert chosen.plan.epoch_s < preset.epoch_s
    at_max = {c: plan(config=RoundConfig.preset("t4-lora", gradient_checkpointing=c), gpu="T4", rows=100)
              for c in (True, False)}
    assert at_max[True].fits and not at_max[False].fits
    grouped = plan(config=RoundConfig.preset("t4-lora", group_by_length=True), gpu="T4", lengths=lengths)
    assert grouped.epoch_s < preset.epoch_s and grouped.peak_gib == preset.peak_gib
