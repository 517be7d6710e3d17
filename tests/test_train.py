"""One round on the tiny model: it learns, only LoRA changes, precision guards hold, bad data stops early."""

import math

import pytest
import torch

import ftlab
from ftlab.config import RoundConfig
from ftlab.data import DataFormatError
from ftlab.round.train import keep_trainables_fp32


def test_a_tiny_round_learns_and_only_lora_changes(tiny, greet_data, tmp_path):
    model, tokenizer = tiny
    base_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = RoundConfig.preset("cpu-tiny", max_steps=60)
    result = ftlab.train_round(config, model, tokenizer, *greet_data, output_dir=str(tmp_path))

    # learning: eval rows use names never seen in training, so this is generalisation, not recall
    assert result.eval_loss < 0.6 * result.eval_loss_before
    assert math.isclose(result.perplexity, math.exp(result.eval_loss))
    train_steps, train_losses = result.curve("loss")
    assert train_losses[-1] < train_losses[0] and train_steps[-1] == 60

    lora = {n: p for n, p in result.model.named_parameters() if "lora_" in n}
    assert lora and all(p.dtype == torch.float32 for p in lora.values())
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in lora.items() if "lora_B" in n)
    for name, param in result.model.named_parameters():
        if "lora_" not in name:
            original = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(param, base_before[original]), f"base weight {original} changed"

    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "tokenizer_config.json").exists()
    assert 0 < result.trainable_share < 0.5


def test_the_tuned_model_answers_the_new_task(tiny, greet_data, tmp_path):
    model, tokenizer = tiny
    train, evaluation = greet_data
    prompts = [r["messages"][0]["content"] for r in evaluation]
    expected = [r["messages"][1]["content"] for r in evaluation]
    before = ftlab.evaluation.answers(model, tokenizer, prompts, max_new_tokens=16)
    result = ftlab.train_round(RoundConfig.preset("cpu-tiny"), model, tokenizer, train, evaluation,
                               output_dir=str(tmp_path))
    after = ftlab.evaluation.answers(result.model, tokenizer, prompts, max_new_tokens=16)
    hits_before = sum(a == e for a, e in zip(before, expected, strict=True))
    hits_after = sum(a == e for a, e in zip(after, expected, strict=True))
    assert hits_before == 0 and hits_after >= len(prompts) // 2, (before, after)


def test_trainables_are_cast_to_fp32_after_trls_bf16_cast():
    layer = torch.nn.Linear(4, 4).to(torch.bfloat16)
    frozen = torch.nn.Linear(4, 4).to(torch.float16).requires_grad_(False)
    model = torch.nn.Sequential(layer, frozen)
    assert keep_trainables_fp32(model) == 2  # weight and bias of the trainable layer
    assert layer.weight.dtype == torch.float32 and frozen.weight.dtype == torch.float16


def test_qlora_path_loads_4bit_on_cpu_and_trains_with_fp32_trainables(tiny_path, greet_data, tmp_path):
    model, tokenizer = ftlab.tiny_model(quantization="4bit", path=tiny_path)
    assert getattr(model, "is_loaded_in_4bit", False)
    assert "Linear4bit" in {type(m).__name__ for m in model.modules()}
    norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
    norms += [model.get_input_embeddings(), model.get_output_embeddings()]
    for norm in norms:
        norm.half()  # as a GPU load in fp16 has them: prepare_model_for_kbit_training casts them to fp32
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    config = RoundConfig.preset("cpu-tiny", max_steps=8, eval_steps=4, quantization="4bit")
    result = ftlab.train_round(config, model, tokenizer, *greet_data, output_dir=str(tmp_path))
    assert all(p.dtype == torch.float32 for p in result.model.parameters() if p.requires_grad)
    assert math.isfinite(result.train_loss) and result.eval_loss < result.eval_loss_before
    # the caller's model keeps its flags, and shares every tensor with the tuned model (the fp32 norms too)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags and any(flags.values())
    tuned = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
             for n, p in result.model.named_parameters() if "lora_" not in n}
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == {n: tuned[n].data_ptr() for n in flags}
    assert norms and all(norm.weight.dtype == torch.float32 for norm in norms)


def test_bad_rows_are_named_before_training(tiny, tmp_path):
    model, tokenizer = tiny
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]},
            {"instruction": "Say hi", "output": "hi"}]
    with pytest.raises(DataFormatError) as error:
        ftlab.train_round(RoundConfig.preset("cpu-tiny"), model, tokenizer, rows, output_dir=str(tmp_path))
    findings = error.value.findings
    assert [(f.row, f.field) for f in findings] == [(2, "messages[1].role"), (3, None)]
    assert "unknown role 'bot'" in str(error.value)
    assert not (tmp_path / "adapter").exists()


def test_rows_longer_than_max_length_are_counted_and_reported_before_training_not_cut_in_silence(tiny):
    import warnings

    from ftlab.data import load
    from ftlab.round.train import training_rows
    from ftlab.templates.template import Template

    _, tokenizer = tiny
    template = Template.chat(tokenizer)
    short = {"messages": [{"role": "user", "content": "Greet Ada."}, {"role": "assistant", "content": "Hello, Ada."}]}
    huge = {"messages": [{"role": "user", "content": "Summarise: " + "word " * 3000},
                         {"role": "assistant", "content": "A summary."}]}
    rows = load([short, huge, short, huge], quiet=True)
    config = RoundConfig.preset("cpu-tiny", max_length=64)
    exact = len(template.encode(short["messages"])[0])  # a row exactly max_length long is not cut
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        formatted = training_rows(template, rows, config)
        assert training_rows(template, rows.select([0, 2]), RoundConfig.preset("cpu-tiny", max_length=exact)) is not None
    messages = [str(w.message) for w in caught]
    longest = len(template.encode(huge["messages"])[0])
    assert messages == [f"2 of 4 train rows are longer than max_length=64 tokens and are cut to it (rows 2, 4; the "
                        f"longest has {longest:,} tokens): the model never sees their ends, and a cut answer teaches it "
                        "to stop mid-sentence. Raise max_length, or shorten or drop those rows "
                        "(ftlab.templates.length_report(rows, tokenizer, max_length) shows every row's length)."]
    assert [len(ids) for ids in formatted["input_ids"]] == [exact, 64, exact, 64]  # cut as the trainer cuts them


# ------------------------------------------------------------------------------------------ what a round promises
SHORT = dict(max_steps=6, eval_steps=3, logging_steps=1)


def test_two_identical_rounds_give_bit_identical_losses(tiny_path, greet_data, tmp_path):
    """The seed covers LoRA's initial weights too: train_round seeds before it builds the adapter."""
    runs = []
    for attempt in range(2):
        model, tokenizer = ftlab.tiny_model(path=tiny_path)
        torch.manual_seed(attempt)  # whatever the caller did to the global generator before
        result = ftlab.train_round(RoundConfig.preset("cpu-tiny", **SHORT), model, tokenizer, *greet_data,
                                   output_dir=str(tmp_path / str(attempt)))
        runs.append([(h["step"], h.get("loss"), h.get("eval_loss")) for h in result.log_history
                     if "loss" in h or "eval_loss" in h])
    assert runs[0] == runs[1]


def test_the_given_model_is_left_as_it_was(tiny, greet_data, tmp_path):
    """train_round returns the tuned model and leaves the caller's model the base it was (weights shared)."""
    model, tokenizer = tiny
    kinds = {n: type(m).__name__ for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    assert any(flags.values())  # a freshly loaded model trains everything: PEFT must not freeze it
    config_before, tokenizer_before = model.config.to_dict(), (tokenizer.pad_token, tokenizer.padding_side,
                                                                tokenizer.chat_template, len(tokenizer))
    prompt = tokenizer("Hello there", return_tensors="pt")
    with torch.no_grad():
        logits_before = model(**prompt).logits
    result = ftlab.train_round(RoundConfig.preset("cpu-tiny", **SHORT), model, tokenizer, *greet_data,
                               output_dir=str(tmp_path / "1"))
    assert {n: type(m).__name__ for n, m in model.named_modules()} == kinds  # no LoRA layers injected
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert not hasattr(model, "peft_config")
    assert model.config.to_dict() == config_before
    assert (tokenizer.pad_token, tokenizer.padding_side, tokenizer.chat_template, len(tokenizer)) == tokenizer_before
    with torch.no_grad():
        assert torch.equal(model(**prompt).logits, logits_before)
        assert not torch.equal(result.model(**prompt).logits, logits_before)
    shared = {p.data_ptr() for p in model.parameters()}
    base_of_result = [p for n, p in result.model.named_parameters() if "lora_" not in n]
    assert all(p.data_ptr() in shared for p in base_of_result)  # no second copy of the base
    # running the cell again trains a fresh adapter on the same base, not a second one under the first
    again = ftlab.train_round(RoundConfig.preset("cpu-tiny", **SHORT), model, tokenizer, *greet_data,
                              output_dir=str(tmp_path / "2"))
    assert again.log_history == result.log_history or again.train_loss == pytest.approx(result.train_loss)
    assert sum("lora_A" in n for n, _ in again.model.named_parameters()) == \
        sum("lora_A" in n for n, _ in result.model.named_parameters())


def test_the_optimizer_that_ran_is_recorded_with_the_reason(tiny, greet_data, tmp_path, capsys):
    model, tokenizer = tiny
    config = RoundConfig.preset("cpu-tiny", max_steps=2, optim="paged_adamw_8bit")
    result = ftlab.train_round(config, model, tokenizer, *greet_data, output_dir=str(tmp_path))
    assert result.optimizer == "adamw_torch"
    assert result.substitutions == [{"knob": "optim", "asked": "paged_adamw_8bit", "used": "adamw_torch",
                                     "why": result.substitutions[0]["why"]}]
    assert "GPU" in result.substitutions[0]["why"]
    assert "paged_adamw_8bit -> adamw_torch" in capsys.readouterr().out


def test_training_on_from_a_tuned_model_leaves_its_adapter_as_it_was(tiny, greet_data, tmp_path):
    model, tokenizer = tiny
    config = RoundConfig.preset("cpu-tiny", **SHORT)
    first = ftlab.train_round(config, model, tokenizer, *greet_data, output_dir=str(tmp_path / "1"))
    adapter = {n: p.detach().clone() for n, p in first.model.named_parameters() if "lora_" in n}
    second = ftlab.train_round(config, first.model, tokenizer, *greet_data, output_dir=str(tmp_path / "2"))
    assert all(torch.equal(p, adapter[n]) for n, p in first.model.named_parameters() if "lora_" in n)
    moved = [n for n, p in second.model.named_parameters() if "lora_" in n and not torch.equal(p, adapter[n])]
    assert moved  # the second round trained on from the first adapter, in its own copy
    prompt = tokenizer("Greet Anna politely.", return_tensors="pt")["input_ids"]
    with torch.no_grad():  # and the second model answers with its own weights, not the first round's
        answers = [r.model(input_ids=prompt).logits for r in (first, second)]
        base = second.model.get_base_model()
        own = type(base).forward(base, input_ids=prompt).logits
    assert torch.equal(answers[1], own) and not torch.allclose(answers[0], answers[1])


def test_one_pass_of_16_rows_takes_the_step_two_accumulated_passes_of_8_take(tiny_path, greet_data, tmp_path):
    """What the CPU preset's batch_size 16 x 1 rests on: the T4's 8 x 2 rows per update give the same update."""
    losses = []
    for batch, passes in ((8, 2), (16, 1)):
        config = RoundConfig.preset("cpu-tiny", max_steps=4, logging_steps=1, eval_steps=None, lora_dropout=0.0,
                                    batch_size=batch, gradient_accumulation_steps=passes)
        result = ftlab.train_round(config, *ftlab.tiny_model(path=tiny_path), greet_data[0],
                                   output_dir=str(tmp_path / f"{batch}x{passes}"))
        losses.append(result.curve("loss")[1])
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], rel=1e-4)
