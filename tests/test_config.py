"""RoundConfig: presets, clear errors before anything is loaded, and what reaches TRL and PEFT."""

import time

import pytest

import ftlab
from ftlab.config import ConfigError, RoundConfig


def test_presets_exist_and_print_as_a_table():
    for name in ("t4-lora", "t4-qlora", "cpu-tiny", "seed003-round1"):
        text = repr(RoundConfig.preset(name))
        assert "learning_rate" in text and "LoRA rank" in text  # a value and its help on each line
    seed003 = RoundConfig.preset("seed003-round1")
    assert (seed003.lora_r, seed003.lora_alpha, seed003.target_modules, seed003.effective_batch_size) == (
        8, 32, ("q_proj", "v_proj"), 32)
    assert RoundConfig.preset("t4-qlora").quantization == "4bit"


def test_preset_overrides_and_diff():
    config = RoundConfig.preset("cpu-tiny", learning_rate=5e-3)
    assert config.diff(RoundConfig.preset("cpu-tiny")) == {"learning_rate": (5e-3, 1e-3)}


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown preset 'colab'.*t4-lora"):
        RoundConfig.preset("colab")


@pytest.mark.parametrize("field, value, words", [
    ("learning_rate", -1e-4, "between 0 and 1"),
    ("lora_r", 0, ">= 1"),
    ("batch_size", 2.5, "whole number"),
    ("lr_scheduler_type", "cosinus", "cosine"),
    ("precision", "bf32", "fp16"),
    ("max_steps", 0, "-1"),
    ("target_modules", [], "q_proj"),
])
def test_bad_values_name_field_value_and_choices(field, value, words):
    with pytest.raises(ConfigError) as error:
        RoundConfig(**{field: value})
    assert f"RoundConfig.{field}" in str(error.value) and repr(value) in str(error.value)
    assert words in str(error.value)


def test_a_bad_value_set_in_a_cell_fails_there_and_keeps_the_old_value():
    config = RoundConfig()
    with pytest.raises(ConfigError, match="learning_rate"):
        config.learning_rate = -0.1
    assert config.learning_rate == 2e-4


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_sft_config_never_leaves_bf16_implicit(precision):
    args = RoundConfig.preset("t4-lora").sft_config("/tmp/x", precision=precision, has_eval=True)
    assert args.fp16 is (precision == "fp16") and args.bf16 is (precision == "bf16")
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert args.report_to in ([], "none", ["none"])
    assert args.learning_rate == 2e-4 and args.assistant_only_loss is True


def test_warmup_fraction_reaches_the_trainer():
    args = RoundConfig(warmup=0.1, max_steps=100).sft_config("/tmp/x", "fp32", has_eval=False)
    assert args.get_warmup_steps(100) == 10


def test_paged_optimizer_falls_back_on_cpu():
    args = RoundConfig.preset("t4-qlora").sft_config("/tmp/x", "fp32", has_eval=False, on_gpu=False)
    assert args.optim == "adamw_torch"


def test_a_precision_the_machine_lacks_becomes_autos_choice_with_the_reason():
    # the one rule for a knob this machine cannot honour (ftlab.round.what_runs): substitute and say why
    used, why = RoundConfig(precision="bf16").resolve_precision("fp16", "Tesla T4")
    assert used == "fp16" and "Tesla T4 has no native bf16" in why
    used, why = RoundConfig(precision="fp16").resolve_precision("fp32")
    assert used == "fp32" and "needs a GPU" in why
    assert RoundConfig().resolve_precision("fp16") == ("fp16", None)  # auto: the machine's choice, nothing to say
    assert RoundConfig(precision="fp32").resolve_precision("bf16") == ("fp32", None)  # fp32 runs anywhere
    assert RoundConfig(precision="fp16").resolve_precision("bf16") == ("fp16", None)  # fp16 runs on an A100


def test_a_missing_target_module_lists_the_layers_before_training(tiny, greet_data):
    model, tokenizer = tiny
    config = RoundConfig.preset("cpu-tiny", target_modules=["q_proj", "query_key_value"])
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"no layer named \['query_key_value'\].*'down_proj'"):
        ftlab.train_round(config, model, tokenizer, *greet_data, output_dir="/tmp/never")
    assert time.perf_counter() - started < 5


def test_preset_values_cannot_be_edited_in_place():
    from ftlab.config import ATTENTION, PRESETS

    config = RoundConfig.preset("t4-lora")
    with pytest.raises(AttributeError):
        config.target_modules.append("gate_proj")  # a tuple: an in-place edit cannot skip validation
    with pytest.raises(TypeError):
        PRESETS["t4-lora"]["knobs"]["lora_r"] = 4
    assert RoundConfig.preset("t4-lora").target_modules == ATTENTION == RoundConfig().target_modules
    config.target_modules = ["q_proj", "v_proj"]  # a list given is stored as a tuple
    assert config.target_modules == ("q_proj", "v_proj")
    with pytest.raises(ConfigError, match="target_modules"):
        config.target_modules = []
    assert config.target_modules == ("q_proj", "v_proj")
    assert RoundConfig(**RoundConfig.preset("cpu-tiny").to_dict()) == RoundConfig.preset("cpu-tiny")


@pytest.mark.parametrize("field, value", [("packing", "yes"), ("gradient_checkpointing", 1), ("padding_free", "no"),
                                          ("max_grad_norm", -1.0), ("weight_decay", -0.1), ("seed", 1.5)])
def test_every_knob_is_checked(field, value):
    with pytest.raises(ConfigError, match=f"RoundConfig.{field}"):
        RoundConfig(**{field: value})


def test_the_optimizer_used_and_why():
    assert RoundConfig(optim="paged_adamw_8bit").optimizer(on_gpu=True) == ("paged_adamw_8bit", None)
    used, why = RoundConfig(optim="paged_adamw_8bit").optimizer(on_gpu=False)
    assert used == "adamw_torch" and "GPU" in why
    assert RoundConfig(optim="adamw_torch").optimizer(on_gpu=False) == ("adamw_torch", None)


def test_the_cpu_preset_is_the_t4_one_except_where_a_reason_is_printed():
    from ftlab.config import CPU_TINY_DIFFERS, differences

    cpu, t4 = RoundConfig.preset("cpu-tiny"), RoundConfig.preset("t4-lora")
    differing = set(cpu.diff(t4))
    assert differing == set(CPU_TINY_DIFFERS)  # every difference explained, no stale explanation
    assert {"lora_r", "lora_alpha", "lora_dropout", "target_modules"}.isdisjoint(differing)
    assert cpu.batch_size * cpu.gradient_accumulation_steps == t4.batch_size * t4.gradient_accumulation_steps
    text = differences("cpu-tiny")
    assert all(reason in text for reason in CPU_TINY_DIFFERS.values())


def test_the_cpu_preset_for_a_small_real_model_explains_each_difference_from_the_t4_one():
    from ftlab.config import CPU_SMALL_DIFFERS, differences

    small, t4 = RoundConfig.preset("cpu-small"), RoundConfig.preset("t4-lora")
    assert set(small.diff(t4)) == set(CPU_SMALL_DIFFERS)  # every difference explained, no stale explanation
    assert {"lora_r", "lora_alpha", "target_modules"}.isdisjoint(small.diff(t4))  # the T4's adapter
    assert small.max_length <= 128 and small.max_steps <= 60 and not small.gradient_checkpointing
    text = differences("cpu-small")
    assert all(reason in text for reason in CPU_SMALL_DIFFERS.values())
    assert "no differences" in differences("t4-lora")


def test_the_learning_rate_hint_reads_loras_scale_alpha_over_r():
    from ftlab.config import lora_scale_hint, lora_scale_note

    # seed 002: r 64, alpha 16 (0.25) at the preset's rate learned 3 of 24 answers; 5x the rate learned 19
    seed002 = RoundConfig.preset("t4-qlora", lora_r=64, lora_alpha=16)
    assert seed002.lora_scale == 0.25
    hint = lora_scale_hint(seed002)
    assert "alpha / r = 16 / 64 = 0.25" in hint and "raise learning_rate about 8x" in hint and "lora_alpha to 128" in hint
    assert f"{2e-4 * 0.25 / 2:.2g}" in lora_scale_note(seed002)  # the rate that moves the weights as much at scale 2
    big = RoundConfig.preset("t4-lora", lora_r=8, lora_alpha=128)  # 16, eight times the presets'
    assert "lower learning_rate about 8x" in lora_scale_hint(big) and "lora_alpha to 16" in lora_scale_hint(big)
    for near in ("t4-lora", "cpu-tiny", "seed003-round1"):  # 2, 2 and 4: the presets' rates suit them
        assert lora_scale_hint(RoundConfig.preset(near)) is None
    assert lora_scale_hint(RoundConfig.preset("cpu-tiny", lora_r=4)) is None  # 8, four times: chapter 04's r 4
