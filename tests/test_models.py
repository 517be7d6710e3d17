"""Model loading: offline errors within seconds, a pad token that is not eos, one template for both uses."""

import time

import pytest

import ftlab
from ftlab.models import ModelNotAvailableError, prepare_tokenizer, quantization_config


def test_a_hub_id_offline_fails_fast_and_points_to_the_tiny_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match=r"ftlab.tiny_model\(\)"):
        ftlab.load_model("TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    assert time.perf_counter() - started < 5


def test_unknown_quantization_is_refused():
    with pytest.raises(ValueError, match="'3bit' is not one of"):
        ftlab.load_model("tiny", quantization="3bit")


def test_four_bit_config_is_qloras_nf4_with_fp16_compute_on_a_t4():
    import torch

    config = quantization_config("4bit", "fp16")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.float16


def test_tiny_tokenizer_pads_with_its_own_token_and_has_marked_template(tiny):
    model, tokenizer = tiny
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert "{%- generation -%}" in tokenizer.chat_template
    assert type(model).__name__ == "LlamaForCausalLM" and model.num_parameters() < 300_000


def test_pad_equal_to_eos_is_replaced(tiny):
    _, tokenizer = tiny
    tokenizer.pad_token = tokenizer.eos_token
    prepare_tokenizer(tokenizer)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_inference_prompt_is_the_training_text_up_to_the_answer(tiny):
    _, tokenizer = tiny
    chat = [{"role": "user", "content": "Greet Anna politely."},
            {"role": "assistant", "content": "Good day to you, Anna."}]
    training_text = tokenizer.apply_chat_template(chat, tokenize=False)
    prompt = tokenizer.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    assert training_text.startswith(prompt)
    assert training_text[len(prompt):] == "Good day to you, Anna." + tokenizer.eos_token + "\n"


def test_answer_tokens_carry_the_loss_and_include_eos(tiny):
    _, tokenizer = tiny
    chat = [{"role": "user", "content": "Double 4."}, {"role": "assistant", "content": "8"}]
    encoded = tokenizer.apply_chat_template(chat, return_assistant_tokens_mask=True, return_dict=True)
    marked = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(marked) == "8" + tokenizer.eos_token


def test_tiny_tokenizer_encodes_any_text(tiny):
    _, tokenizer = tiny
    text = "答案是12.5 café"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_the_tiny_model_is_built_deterministically():
    from ftlab import tiny
    from ftlab.data.synthetic import instructions

    rows = instructions(300, "skills", seed=0)
    first, second = tiny.build_tokenizer(rows), tiny.build_tokenizer(rows)
    assert first.get_vocab() == second.get_vocab()
    runs = []
    for _ in range(2):
        model = tiny.build_model(first, seed=0)
        runs.append(tiny.pretrain(model, first, rows, steps=5, batch_size=8, learning_rate=3e-3, progress=False))
    assert runs[0] == runs[1] and runs[0][-1] < runs[0][0]
