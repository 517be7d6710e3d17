"""Useful-token ratio on constructed batches; padding-free (packed) rows attend only to themselves."""

import pytest

torch = pytest.importorskip("torch")

from ftlab.round.useful_tokens import UsefulTokens, batch_counts  # noqa: E402


def test_eta_of_a_constructed_padded_batch():
    batch = {"input_ids": torch.zeros(3, 6, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])}
    assert batch_counts(batch) == (11, 18)  # eta = 11 / 18
    assert batch_counts({"input_ids": torch.zeros(1, 11, dtype=torch.long)}) == (11, 11)  # padding-free


def test_useful_tokens_counts_training_batches_only():
    class Model:
        training = True

    model = Model()
    counter = UsefulTokens(lambda rows: {"input_ids": torch.zeros(len(rows), 4),
                                         "attention_mask": torch.tensor(rows)}, model)
    counter([[1, 1, 1, 1], [1, 0, 0, 0]])
    model.training = False  # an evaluation batch
    counter([[1, 0, 0, 0], [1, 0, 0, 0]])
    assert (counter.real, counter.positions) == (5, 8) and counter.ratio == 5 / 8


@pytest.fixture
def rows(tiny):
    model, tokenizer = tiny
    texts = ["Hello there, how are you today?", "Hi.", "A somewhat longer third row of text to pack in."]
    return model.eval(), [tokenizer(t, return_tensors="pt")["input_ids"][0] for t in texts]


def test_packed_and_separate_forward_passes_give_the_same_logits(rows):
    model, ids = rows
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        alone = [model(input_ids=x[None]).logits[0] for x in ids]
        flat, positions = torch.cat(ids)[None], torch.cat([torch.arange(len(x)) for x in ids])[None]
        packed = model(input_ids=flat, position_ids=positions, use_cache=False).logits[0]  # as TRL trains
        cached = model(input_ids=flat, position_ids=positions).logits[0]  # the config's use_cache=True
    assert torch.allclose(packed, torch.cat(alone), atol=1e-5)  # no row attends to another
    # with a KV cache transformers ignores the position ids' row boundaries: rows then see each other
    assert not torch.allclose(cached, torch.cat(alone), atol=1e-3)


def test_the_block_diagonal_mask_comes_from_position_ids_only_without_an_attention_mask(rows):
    model, ids = rows
    flat, positions = torch.cat(ids)[None], torch.cat([torch.arange(len(x)) for x in ids])[None]
    with torch.no_grad():
        alone = torch.cat([model(input_ids=x[None]).logits[0] for x in ids])
        masked = model(input_ids=flat, position_ids=positions, attention_mask=torch.ones_like(flat),
                       use_cache=False).logits[0]
    first = len(ids[0])
    assert torch.allclose(masked[:first], alone[:first], atol=1e-5)  # the first row has nothing before it
    assert not torch.allclose(masked[first:], alone[first:], atol=1e-3)  # later rows see the earlier ones


def test_trl_padding_free_batches_train_on_the_same_loss_as_padded_ones(rows):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model, ids = rows
    features = [{"input_ids": x.tolist()} for x in ids]
    pad_id = model.config.pad_token_id
    padded = DataCollatorForLanguageModeling(pad_token_id=pad_id)(features)
    flat = DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True)(features)
    assert "attention_mask" not in flat and batch_counts(flat) == (sum(map(len, ids)),) * 2
    assert batch_counts(padded)[1] == 3 * max(map(len, ids))
    with torch.no_grad():
        loss_padded = model(**{k: padded[k] for k in ("input_ids", "attention_mask", "labels")}).loss
        loss_flat = model(**{k: flat[k] for k in ("input_ids", "position_ids", "labels")}, use_cache=False).loss
    assert torch.allclose(loss_padded, loss_flat, atol=1e-5)


def test_a_padding_free_round_reports_eta_1_and_trains_on_the_same_loss(tiny_path, tmp_path):
    import ftlab
    from ftlab.config import RoundConfig
    from ftlab.data import instructions

    rows = instructions(64, "skills", seed=3)  # rows of different lengths

    results = {}
    for knobs in ({}, {"padding_free": True}, {"group_by_length": True}):
        model, tokenizer = ftlab.tiny_model(path=tiny_path)
        config = RoundConfig.preset("cpu-tiny", max_steps=2, batch_size=8, logging_steps=1, **knobs)
        results[tuple(knobs)] = ftlab.train_round(config, model, tokenizer, rows,
                                                  output_dir=str(tmp_path / str(len(results))))
    padded, free, grouped = results[()], results[("padding_free",)], results[("group_by_length",)]
    assert free.useful_token_ratio == 1.0 and padded.useful_token_ratio < 1.0
    assert grouped.useful_token_ratio >= padded.useful_token_ratio
    # the same rows in the first batch: the same loss, with or without padding
    assert free.curve("loss")[1][0] == pytest.approx(padded.curve("loss")[1][0], rel=1e-4)
    assert "useful tokens (eta)" in padded.summary()


def test_a_round_measures_tokens_per_second_and_the_lab_records_it(tiny, tmp_path):
    import ftlab
    from ftlab.config import RoundConfig
    from ftlab.data import instructions

    config = RoundConfig.preset("cpu-tiny", max_steps=2, batch_size=8)
    round_ = ftlab.Lab(tmp_path).train(config, *tiny, instructions(32, "skills", seed=4))
    measured = round_.metrics
    assert measured["tokens_per_s"] > 0 and 0 < measured["useful_token_ratio"] < 1
    assert "peak_allocated_gib" not in measured  # no GPU here: nothing measured is made up


def test_on_a_gpu_the_meter_puts_the_plan_beside_the_measurement(tiny, monkeypatch):
    from types import SimpleNamespace

    import ftlab.round.useful_tokens
    from ftlab.config import RoundConfig
    from ftlab.round.useful_tokens import RoundMeter

    monkeypatch.setattr(ftlab.round.useful_tokens, "gpu_info", lambda: ("Tesla T4", 1, (7, 5), 14.74))  # a T4, faked
    trainer = SimpleNamespace(data_collator=lambda rows: rows, model=tiny[0])
    meter = RoundMeter(trainer, RoundConfig.preset("cpu-tiny"), tiny[0])
    meter.start()
    facts = meter.read()
    assert facts["planned_peak_gib"] == round(meter.planned.peak_gib, 3) and meter.planned.gpu.name == "T4"


def test_on_a_gpu_a_round_reports_its_measured_peak_beside_the_plan_for_its_rows(tiny, monkeypatch, capsys):
    """The GPU-only path, with CUDA's memory statistics faked: what RoundResult.summary() and the lab show."""
    from types import SimpleNamespace

    from datasets import Dataset

    import ftlab.round.useful_tokens
    from ftlab.config import RoundConfig
    from ftlab.memory.estimate import plan
    from ftlab.memory.gpus import gpu_for
    from ftlab.memory.shapes import model_shape
    from ftlab.round.train import RoundResult
    from ftlab.round.useful_tokens import RoundMeter

    monkeypatch.setattr(ftlab.round.useful_tokens, "gpu_info", lambda: ("Tesla T4", 1, (7, 5), 14.74))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 3.5 * 2**30)
    config = RoundConfig.preset("cpu-tiny")  # max_length 256; the rows below are at most 100 tokens
    rows = Dataset.from_dict({"input_ids": [[1] * 40, [1] * 100, [1] * 70]})
    trainer = SimpleNamespace(data_collator=lambda features: {"input_ids": torch.zeros(2, 5)}, model=tiny[0],
                              train_dataset=rows)
    meter = RoundMeter(trainer, config, tiny[0])
    meter.start()
    trainer.data_collator([])  # one training batch of 10 positions
    facts = meter.read()
    assert facts["peak_allocated_gib"] == 3.0 and facts["peak_reserved_gib"] == 3.5
    assert meter.planned.tokens_per_step == config.batch_size * 100  # the longest row that ran, not max_length
    upper_bound = plan(model_shape(tiny[0]), config=config, gpu=gpu_for("Tesla T4", 14.74))
    assert facts["planned_peak_gib"] == round(meter.planned.peak_gib, 3) < upper_bound.peak_gib
    result = RoundResult(config=config, precision="fp16", log_history=[], train_loss=1.0, eval_loss=None,
                         eval_loss_before=None, wall_time_s=facts.pop("wall_time_s"), trainable_params=1,
                         total_params=2, output_dir="out", adapter_dir="out/adapter",
                         useful_token_ratio=facts["useful_token_ratio"], measured=facts)
    shown = result.summary()
    printed = capsys.readouterr().out
    for name in ("peak GPU GiB allocated", "peak GPU GiB reserved", "peak GPU GiB planned", "token positions / s"):
        assert name in shown and name in printed
    assert shown["peak GPU GiB allocated"] == 3.0 and shown["peak GPU GiB planned"] == facts["planned_peak_gib"]


def test_token_lengths_do_not_count_padding(tiny):
    """eta and the plan need real row lengths, also from a tokenizer whose backend pads (as saved, or left so)."""
    from ftlab.data import general
    from ftlab.templates.template import Template

    _, tokenizer = tiny
    template = Template.chat(tokenizer)
    conversations = [r["messages"] for r in general(12)]
    expected = [len(template.encode(messages)[0]) for messages in conversations]
    tokenizer.backend_tokenizer.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    assert template.token_lengths(conversations) == expected and len(set(expected)) > 1


def test_the_output_layer_scores_only_loss_positions_with_the_same_loss_and_gradients(tiny_path, monkeypatch):
    """Drift test: TRL's fused LM head scores every position on the CPU unless its rule (trl.trainer.utils._use_triton)
    says otherwise; inside ftlab's block it scores only the labelled ones, with the same loss and gradients."""
    import threading

    import trl.trainer.utils as fused_head
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from ftlab.round.useful_tokens import score_loss_positions_only

    scored, chunked = [], fused_head._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *args):
            scored.append(hidden.shape[0])
            return chunked.apply(hidden, *args)

    monkeypatch.setattr(fused_head, "_ChunkedLogProbFunction", Spy)
    monkeypatch.setattr(fused_head, "_use_triton", fused_head._use_triton)  # put TRL's own rule back afterwards
    model = AutoModelForCausalLM.from_pretrained(tiny_path).train()
    add_fused_lm_head(model)
    ids = torch.arange(3, 33).reshape(2, 15)
    labels = torch.full_like(ids, -100)
    labels[0, 10:], labels[1, 12:] = ids[0, 10:], ids[1, 12:]  # the answers: 8 positions of 28 shifted ones

    def loss_and_gradients():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss, grads = loss_and_gradients()
    with score_loss_positions_only():
        loss_compact, grads_compact = loss_and_gradients()
        elsewhere = threading.Thread(target=loss_and_gradients)  # another thread keeps TRL's answer
        elsewhere.start()
        elsewhere.join()
    loss_and_gradients()  # after the block, TRL's answer again
    assert scored == [28, 8, 28, 28]  # every shifted position, then only those with a label
    # the same sums in another order: equal up to float32 rounding, relative to each tensor's scale (any CPU's kernels)
    assert torch.allclose(loss, loss_compact, rtol=1e-5, atol=0)
    assert len(grads) == len(grads_compact) > 0
    assert all((a - b).abs().max() <= 1e-5 * a.abs().max() for a, b in zip(grads, grads_compact, strict=True))
