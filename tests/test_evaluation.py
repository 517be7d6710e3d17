"""Perplexity, generation flags, evaluation files and base-versus-tuned on the tiny model."""

import json
import math

import pytest
import torch

import ftlab
from ftlab.config import RoundConfig
from ftlab.evaluation import scoring as evaluation
from ftlab.evaluation.generation import generate, is_repetitive


def test_perplexity_equals_exp_of_a_mean_nll_computed_row_by_row(tiny, greet_data):
    model, tokenizer = tiny
    rows = greet_data[1][:7]
    nll_sum, tokens = 0.0, 0
    for row in rows:  # one row at a time, through the model's own loss: no padding, no batching involved
        encoded = tokenizer.apply_chat_template(row["messages"], return_assistant_tokens_mask=True,
                                                return_dict=True)
        ids = torch.tensor([encoded["input_ids"]])
        labels = torch.tensor([[t if m else -100 for t, m in zip(encoded["input_ids"], encoded["assistant_masks"],
                                                                 strict=True)]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss.item()
        counted = int((labels[0, 1:] != -100).sum())
        nll_sum += loss * counted
        tokens += counted
    by_hand = math.exp(nll_sum / tokens)
    assert ftlab.evaluation.perplexity(model, tokenizer, rows, batch_size=3) == pytest.approx(by_hand, rel=1e-4)


def test_perplexity_matches_the_trainers_eval_loss(tiny, greet_data, tmp_path):
    model, tokenizer = tiny
    train, evaluation_rows = greet_data  # 12 eval rows: one eval batch of 16, so the trainer's mean is per token
    result = ftlab.train_round(RoundConfig.preset("cpu-tiny", max_steps=20), model, tokenizer, train,
                               evaluation_rows, output_dir=str(tmp_path))
    ppl = ftlab.evaluation.perplexity(result.model, tokenizer, evaluation_rows)
    assert ppl == pytest.approx(result.perplexity, rel=1e-3)


def test_token_and_batch_weighted_means_differ_on_rows_of_different_lengths(tiny, tmp_path):
    """The trainer's eval loss is a mean of batch means; ftlab's perplexity weighs every answer token alike."""
    model, tokenizer = tiny
    long_answers = ftlab.data.instructions(8, "opposite", seed=2)  # "The opposite of hot is cold.": ~10 tokens
    short_answers = ftlab.data.instructions(4, "double", seed=2)  # "14": one or two tokens and the end of turn
    rows = long_answers + short_answers  # eval batches of 8: one of long answers, one of short ones
    config = RoundConfig.preset("cpu-tiny", max_steps=4, eval_steps=None, batch_size=8)
    result = ftlab.train_round(config, model, tokenizer, ftlab.data.course_set("demo")[0], rows, output_dir=str(tmp_path))
    by_token, tokens = evaluation.mean_nll(result.model, tokenizer, rows, batch_size=8, per="token")
    by_batch, same_tokens = evaluation.mean_nll(result.model, tokenizer, rows, batch_size=8, per="batch")
    assert tokens == same_tokens and abs(by_token - by_batch) > 0.01 * by_token  # the short batch weighs more
    assert by_batch == pytest.approx(result.eval_loss, rel=1e-4)  # the trainer's way, reproduced
    assert math.exp(by_token) == pytest.approx(evaluation.perplexity(result.model, tokenizer, rows), rel=1e-6)
    one_batch = evaluation.mean_nll(result.model, tokenizer, rows, batch_size=16, per="batch")[0]
    assert one_batch == pytest.approx(by_token, rel=1e-6)  # one batch: the two weightings agree


def test_generation_stops_at_eos_and_flags_repetition(tiny, greet_data):
    model, tokenizer = tiny
    skills = ftlab.data.instructions(8, "skills", seed=3)
    out = generate(model, tokenizer, [r["messages"][0]["content"] for r in skills], max_new_tokens=40)
    assert all(g.stopped and g.new_tokens < 40 for g in out)
    assert all(tokenizer.eos_token not in g.text and tokenizer.pad_token not in g.text for g in out)
    assert is_repetitive("the poem the poem the poem the poem the poem") and not is_repetitive("Good day to you, Anna.")
    assert is_repetitive("春眠不觉晓春眠不觉晓春眠不觉晓")


def test_evaluate_saves_predictions_and_base_vs_tuned_uses_one_model(tiny, greet_data, tmp_path, monkeypatch):
    model, tokenizer = tiny
    train, evaluation_rows = greet_data
    result = ftlab.train_round(RoundConfig.preset("cpu-tiny"), model, tokenizer, train, evaluation_rows,
                               output_dir=str(tmp_path))

    import transformers

    def no_second_copy(*args, **kwargs):
        raise AssertionError("base_vs_tuned loaded a second model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_second_copy)
    table, base, tuned = evaluation.base_vs_tuned(result.model, tokenizer, evaluation_rows)
    assert table.loc["exact_match", "tuned"] > table.loc["exact_match", "base"]
    assert table.loc["perplexity", "tuned"] < table.loc["perplexity", "base"]
    assert base.rows[0]["prediction"] != tuned.rows[0]["prediction"]

    saved = evaluation.evaluate(result.model, tokenizer, evaluation_rows, output_dir=result.output_dir)
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == len(evaluation_rows) and json.loads(lines[0])["reference"]
    assert json.loads((tmp_path / "scores.json").read_text())["exact_match"] == saved.scores["exact_match"]


def test_perplexity_of_plain_texts_counts_every_token_and_equals_a_hand_computation(tiny):
    model, tokenizer = tiny
    texts = ["Anna sends Ben a red apple.", "Good day to you, Chen, and welcome."]
    nll, count = 0.0, 0
    for text in texts:  # by hand: each token predicted from the ones before it
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
        nll -= log_probs.gather(-1, ids[0, 1:].unsqueeze(-1)).sum().item()
        count += ids.shape[1] - 1
    by_hand = math.exp(nll / count)
    assert ftlab.evaluation.perplexity(model, tokenizer, texts) == pytest.approx(by_hand, rel=1e-4)
    assert ftlab.evaluation.perplexity(model, tokenizer, [{"text": t} for t in texts]) == pytest.approx(by_hand, rel=1e-4)
    assert ftlab.evaluation.mean_nll(model, tokenizer, texts)[1] == count
    with pytest.raises(ValueError, match="row 2 is neither a chat row"):
        ftlab.evaluation.perplexity(model, tokenizer, [texts[0], {"prompt": "x"}])
