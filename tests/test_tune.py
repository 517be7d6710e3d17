"""The learning-rate range test on ftlab's tiny CPU model: a suggestion inside the tested range that
trains, while 10x it learns clearly worse; the model comes back bit-identical."""

import hashlib

import pytest


def checksums(model):
    return {k: hashlib.sha1(v.detach().cpu().numpy().tobytes()).hexdigest() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def found(tiny_path, greet_data):
    import ftlab
    from ftlab.tune import lr_find

    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    before = checksums(model)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    config = ftlab.RoundConfig.preset("cpu-tiny")
    finding = lr_find(config, model, tokenizer, greet_data[0], steps=60)
    return finding, model, tokenizer, before, flags


def test_lr_find_leaves_the_model_exactly_as_it_was(found):
    finding, model, _, before, flags = found
    assert checksums(model) == before
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_lr_find_suggests_a_value_inside_the_tested_range_and_says_it_is_a_starting_point(found):
    finding = found[0]
    assert finding.lrs[0] <= finding.suggestion <= finding.lrs[-1]
    assert finding.diverged_at is None or finding.suggestion < finding.diverged_at
    assert "starting point" in str(finding) and "steepest" in str(finding)
    assert finding.plot() is not None


def test_lr_find_suggestion_trains_while_ten_times_it_learns_clearly_worse(found, greet_data, tmp_path):
    import ftlab

    finding, model, tokenizer, *_ = found
    train, eval = greet_data
    losses = {}
    for lr in (finding.suggestion, 10 * finding.suggestion):
        config = ftlab.RoundConfig.preset("cpu-tiny", learning_rate=lr, max_steps=40, eval_steps=None)
        result = ftlab.train_round(config, model, tokenizer, train, eval[:8], output_dir=str(tmp_path / f"lr{lr:g}"))
        losses[lr] = (result.eval_loss_before, result.eval_loss)
    (before, good), (_, bad) = losses.values()
    assert good < before - 1.0, losses  # it trains
    assert not bad == bad or bad > good + 0.3, losses  # 10x diverges (nan) or learns clearly worse


def test_lr_find_refuses_an_unknown_rule(tiny):
    import ftlab
    from ftlab.tune import lr_find

    with pytest.raises(ValueError, match="rule"):
        lr_find(ftlab.RoundConfig.preset("cpu-tiny"), *tiny, [], rule="middle")
