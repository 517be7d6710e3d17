"""The sanity checks of chapter 00: loss before training against ln(vocabulary), per-token loss of one row."""

import math

import pytest

import ftlab
from ftlab.evaluation import before_training as sanity

ROW = {"messages": [{"role": "user", "content": "Greet Ann politely."},
                    {"role": "assistant", "content": "Good day to you, Ann."}]}


def test_a_fresh_model_starts_near_ln_vocabulary_and_the_pretrained_one_below(tiny):
    from transformers import AutoModelForCausalLM

    from ftlab.course.demo import demo_data

    model, tokenizer = tiny
    rows = demo_data()[1]  # chapter 00's evaluation rows
    pretrained = sanity.starting_loss(model, tokenizer, rows)
    fresh = sanity.starting_loss(AutoModelForCausalLM.from_config(model.config), tokenizer, rows)  # random weights
    small = sanity.starting_loss(sanity.untrained_like(model), tokenizer, rows)
    assert small.vocabulary == fresh.vocabulary and abs(small.loss - small.uniform) < 0.1 * small.uniform
    assert fresh.vocabulary == pretrained.vocabulary == model.config.vocab_size
    assert abs(fresh.loss - math.log(fresh.vocabulary)) < 0.1 * math.log(fresh.vocabulary)
    assert "knows nothing" in fresh.verdict
    assert pretrained.loss < 0.8 * pretrained.uniform and "better than chance" in pretrained.verdict
    assert "labels" in sanity.StartingLoss(3 * pretrained.uniform, pretrained.vocabulary, 10).verdict
    # the tiny model never saw arithmetic in pre-training: it is confidently wrong there, above ln V
    alien = sanity.starting_loss(model, tokenizer, ftlab.data.arithmetic(20, seed=0))
    assert alien.loss > 1.2 * alien.uniform and "confidently wrong" in alien.verdict


def test_per_token_losses_count_the_answer_and_its_end_of_turn_only(tiny):
    from ftlab import Template
    from ftlab.evaluation.scoring import mean_nll

    model, tokenizer = tiny
    template = Template.chat(tokenizer)
    table = sanity.token_losses(model, tokenizer, ROW, template)
    ids, mask = template.encode(ROW["messages"])
    assert table.counts == [bool(m) for m in mask] and len(table.tokens) == len(ids)
    counted = "".join(t for t, c in zip(table.tokens, table.counts, strict=True) if c)
    assert counted.startswith("Good day to you") and counted.endswith(tokenizer.eos_token)
    assert "Greet" not in counted
    assert table.losses[0] is None and all(loss >= 0 for loss in table.losses[1:])
    # the row's loss is the mean over the counted tokens: what the evaluation computes for this row
    assert table.mean == pytest.approx(mean_nll(model, tokenizer, [ROW], template=template)[0], rel=1e-4)
    shown = repr(table)
    assert "masked: -100" in shown and f"{sum(mask)} of {len(ids)} tokens count" in shown
