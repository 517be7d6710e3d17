"""The learning-rate range test on ftlab's tiny CPU model: a suggestion inside the tested range that
trains, while 10x it learns clearly worse; the model comes back bit-identical."""

import hashlib

import pytest


def checksums(model):
    return {k: hashlib.sha1(v.detach().cpu().numpy().tobytes()).hexdigest() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def found(tiny_path, greet_data):
    import ftlab
    from ftlab.round.lr_finder import lr_find

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
    assert "alpha / r = 2:" in str(finding)  # cpu-tiny's 32 / 16: the rates found hold at that scale
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
    from ftlab.round.lr_finder import lr_find

    with pytest.raises(ValueError, match="rule"):
        lr_find(ftlab.RoundConfig.preset("cpu-tiny"), *tiny, [], rule="middle")


# ------------------------------------------------------------------------------------------ sweeps
SHORT = dict(max_steps=30, eval_steps=None, logging_steps=10)


@pytest.fixture(scope="module")
def swept(tiny_path, greet_data, tmp_path_factory):
    import ftlab

    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    lab = ftlab.Lab(tmp_path_factory.mktemp("sweep-lab"))
    train, eval = greet_data
    baseline = ftlab.RoundConfig.preset("cpu-tiny", learning_rate=3e-3, **SHORT)
    result = lab.sweep(baseline, {"learning_rate": [3e-4, 3e-2], "lora_dropout": [0.1],
                                  "target_modules": [("no_such_proj",)]},
                       model, tokenizer, train, eval[:8], repeats=3, budget_rounds=8, samples=0)
    return lab, result


def test_sweep_keeps_every_round_in_the_lab_and_goes_on_after_a_failed_round(swept):
    lab, result = swept
    statuses = [p.status for p in result.points]
    assert "failed" in statuses, result  # the round on a layer the model lacks
    failed = statuses.index("failed")
    assert any(p.status == "succeeded" for p in result.points[failed + 1:]) or failed == len(statuses) - 1
    ids = [p.round_id for p in result.points if p.round_id is not None]
    assert sorted(ids) == [r.id for r in lab.rounds()]


def test_sweep_ranks_the_learning_rate_above_dropout(swept):
    _, result = swept
    table = result.ranking()
    knobs = list(table["knob"])
    assert knobs.index("learning_rate") < knobs.index("lora_dropout"), table
    lr = table.set_index("knob").loc["learning_rate"]
    assert bool(lr["beyond noise"]), table  # three seeds of the baseline: the lr's effect is beyond their noise
    assert "learning_rate matters most" in result.conclusion()
    assert result.plot() is not None


def result_of(baseline_values, dropout_values):
    """A sweep's result written by hand: baseline repeats and lora_dropout=0.1 rounds with these eval losses."""
    import ftlab
    from ftlab.lab.sweeps import SweepPoint, SweepResult

    points = [SweepPoint({}, "baseline", i, "succeeded", v) for i, v in enumerate(baseline_values)]
    points += [SweepPoint({"lora_dropout": 0.1}, "one factor", 10 + i, "succeeded", v)
               for i, v in enumerate(dropout_values)]
    return SweepResult(ftlab.RoundConfig.preset("cpu-tiny"), "eval_loss", points)


def test_an_effect_within_the_noise_of_three_repeats_is_not_called_beyond_it():
    # notebook 05's old case: dropout moved the loss by ~0.002 where two seeds differed by 0.001
    two = result_of([0.1675, 0.1685], [0.1701])
    assert two.ranking()["beyond noise"].tolist() == [None]  # two repeats: the noise is unknown
    assert "noise is unknown" in two.conclusion() and "repeats=3" in two.conclusion()
    three = result_of([0.1675, 0.1685, 0.1680], [0.1701])  # s = 0.0005: t(2) s sqrt(1 + 1/3) = 0.0025
    row = three.ranking().iloc[0]
    assert row["effect"] == pytest.approx(0.0021, abs=1e-9) and row["noise"] == pytest.approx(0.002484, rel=1e-3)
    assert not row["beyond noise"] and "Within noise (may be luck): lora_dropout" in three.conclusion()
    far = result_of([0.1675, 0.1685, 0.1680], [0.1801])  # the same noise, an effect five times it
    assert far.ranking().iloc[0]["beyond noise"] and "Beyond noise: lora_dropout" in far.conclusion()
    twice = result_of([0.1675, 0.1685, 0.1680], [0.1701, 0.1701])  # two rounds at the value: less noise
    assert twice.ranking().iloc[0]["noise"] < row["noise"]


# ------------------------------------------------------------------------------------------ sweeps on known values
# Seed 004's sweep by accuracy, as a learner redid it: ftlab once named the worst value of each knob best.
ACCURACY = {(1e-3, 60): 0.375, (3e-4, 60): 0.0, (3e-3, 60): 0.925, (1e-3, 120): 1.0, (3e-3, 120): 0.95}
JITTER = {42: 0.0, 43: -0.025, 44: 0.025}  # the baseline's three seeds: s = 0.025, so the noise is known


class ScriptedLab:
    """A lab whose rounds are recorded, not trained: each gets the value ``outcome(config)`` (None: the round
    failed), so a sweep's decisions are checked on values known in advance, in milliseconds, on any CPU."""

    def __new__(cls, path, metric, outcome):
        import ftlab
        from ftlab.lab.round import Round
        from ftlab.lab.storage import new_round_folder

        class Scripted(ftlab.Lab):
            def train(self, config, *inputs, name=None, **options):
                number, folder = new_round_folder(self.path)
                value = outcome(config)
                metrics = {"train_loss": 0.5, "eval_loss": 0.5, metric: value}
                if metric not in ("train_loss", "eval_loss"):
                    metrics["scores"] = [metric]
                failure = None if value is not None else {"kind": "out of memory", "message": "scripted", "advice": ""}
                round_ = Round(folder, {"id": number, "name": name, "status": "succeeded" if failure is None else
                                        "failed", "config": config.to_dict(), "seed": config.seed, "data": {},
                                        "template": {}, "base_model": "tiny", "repeat_of": None,
                                        "metrics": metrics if failure is None else None, "failure": failure})
                round_.update()
                return round_

        return Scripted(path)


def scripted_sweep(tmp_path, metric, transform, **options):
    import ftlab

    def outcome(config):
        if config.lora_r == 64:
            return None  # this value fails (out of memory): it counts as the worst value seen
        return transform(ACCURACY[(config.learning_rate, config.max_steps)] + JITTER[config.seed])

    lab = ScriptedLab(tmp_path / metric, metric, outcome)
    baseline = ftlab.RoundConfig.preset("cpu-tiny", max_steps=60)
    space = {"learning_rate": [3e-4, 3e-3], "max_steps": [120], "lora_r": [64]}
    stand_in = object()  # the sweep reads its inputs once (RoundInputs); the scripted lab trains nothing with them
    return lab, lab.sweep(baseline, space, stand_in, stand_in, [], [], repeats=3, metric=metric, **options)


@pytest.mark.parametrize("metric, transform", [("exact_match", lambda v: v), ("eval_loss", lambda v: 1 - v)],
                         ids=["higher is better", "lower is better"])
def test_a_sweep_names_the_best_value_in_the_metrics_direction_and_combines_the_best(tmp_path, metric, transform):
    lab, result = scripted_sweep(tmp_path, metric, transform, score=lambda model, tokenizer: {})
    table = result.ranking().set_index("knob")
    assert list(table.index) == ["max_steps", "learning_rate", "lora_r"], table  # by effect, as seed 004 ranked
    assert table.loc["learning_rate", "best value"] == repr(3e-3), table  # not 3e-4, the worst
    assert table.loc["max_steps", "best value"] == "120", table
    assert table.loc["learning_rate", "effect"] == pytest.approx(0.55) and table.loc["lora_r", "failed"] == 1
    assert bool(table.loc["learning_rate", "beyond noise"]) and bool(table.loc["max_steps", "beyond noise"])
    grid = [p for p in result.points if p.phase == "grid"]  # both knobs beat the baseline: they are combined
    assert [p.knobs for p in grid] == [{"learning_rate": 3e-3, "max_steps": 120}], result
    assert grid[0].metric == pytest.approx(transform(0.95))
    assert result.best().knobs == {"max_steps": 120} and result.best().metric == pytest.approx(transform(1.0))
    assert result.direction.higher == (metric == "exact_match")
    assert f"({result.direction.words})" in result.conclusion() and "best value 120" in result.conclusion()
    assert len(lab.rounds()) == 3 + 3 + 1 + 1  # baseline repeats, one factor (a failed one too), the grid
    with pytest.warns(UserWarning, match="differ in 2 knobs"):  # the grid round changed two: said, and compared
        comparison = lab.compare([r.id for r in lab.rounds() if r.status == "succeeded"])
    name = "exact_match" if metric == "exact_match" else "eval loss"
    assert comparison.best[name][0] == result.best().round_id
    assert f"best {name} ({result.direction.words}): round {result.best().round_id}" in repr(comparison)


def test_a_sweep_refuses_a_metric_it_cannot_read_before_any_round(tmp_path):
    with pytest.raises(ValueError, match="'my_error_rate'.*higher_is_better"):
        scripted_sweep(tmp_path, "my_error_rate", lambda v: 1 - v, score=lambda model, tokenizer: {})
    with pytest.raises(ValueError, match="needs the score that measures it: score="):
        scripted_sweep(tmp_path, "exact_match", lambda v: v)  # no score=: nothing would record exact_match
    assert not list(tmp_path.rglob("round.json"))  # refused before a round was recorded
    lab, declared = scripted_sweep(tmp_path, "my_error_rate", lambda v: 1 - v, higher_is_better=False,
                                   score=lambda model, tokenizer: {})
    assert declared.ranking().set_index("knob").loc["learning_rate", "best value"] == repr(3e-3)
    with pytest.raises(ValueError, match="better lower"):
        scripted_sweep(tmp_path, "eval_loss", lambda v: v, higher_is_better=True)


def test_the_direction_rule_knows_every_score_of_the_metrics_table_and_the_losses():
    from ftlab.evaluation.metrics import SCORES, score
    from ftlab.lab.directions import direction, known

    keys = score(["2 cats", "3"], ["2 cats", "4"], names=list(SCORES))
    assert set(keys) >= {"exact_match", "f1", "bleu", "rouge1", "rougeL", "answer_accuracy"}
    assert all(known(k) is True for k in keys), {k: known(k) for k in keys}  # every score: better higher
    for name in ("accuracy", "overall_accuracy", "eval_accuracy", "eval_exact_match"):
        assert direction(name).higher
    for name in ("eval_loss", "eval loss", "train_loss", "loss", "perplexity", "eval_loss_before"):
        assert not direction(name).higher
    assert direction("tokens_per_s", higher_is_better=True).higher
    with pytest.raises(ValueError, match="'tokens_per_s'"):
        direction("tokens_per_s")
    assert direction("exact_match").best([0.375, 0.0, 0.925]) == 0.925
    assert direction("eval_loss").best([0.375, 0.0, 0.925]) == 0.0


def test_sweep_runs_at_most_its_budget_of_rounds(tiny_path, greet_data, tmp_path):
    import ftlab

    model, tokenizer = ftlab.tiny_model(path=tiny_path)
    lab = ftlab.Lab(tmp_path / "lab")
    baseline = ftlab.RoundConfig.preset("cpu-tiny", max_steps=5, eval_steps=None, logging_steps=5)
    result = lab.sweep(baseline, {"learning_rate": [1e-3, 1e-2, 3e-2], "lora_r": [4, 8]}, model, tokenizer,
                       greet_data[0], greet_data[1][:4], budget_rounds=3, samples=0)
    assert len(lab.rounds()) == 3
    assert "budget of 3" in str(result)


# ------------------------------------------------------------------------------------------ exercise 05's checks
def test_exercise_checks_say_what_is_wrong_without_giving_the_answer(found, tmp_path):
    """Each wrong reading is drawn from this run's own curve (its lowest point, its last lr tried), so the case it
    tests exists on any CPU, however far that CPU's curve runs before it diverges."""
    import ftlab
    from ftlab.course.checks import CheckFailed, check_lr_reading, check_lr_rounds

    finding = found[0]
    low, last = finding.lrs[0], finding.lrs[-1]
    bottom = finding.lrs[finding.smoothed.index(min(finding.smoothed))]
    assert low < finding.steepest < bottom <= last, finding  # the curve falls, then stops falling: a range test
    secrets = [f"{v:.2g}" for v in (finding.suggestion, finding.steepest, bottom, finding.diverged_at or 0)]
    whole = "do not both match the curve"  # one verdict for the pair: no reading named, no direction given
    for good, high, words in ((None, 1e-2, "still None"), (bottom, last, whole), (finding.steepest, low, whole),
                              (10.0, 20.0, "inside the range")):
        with pytest.raises(CheckFailed, match=words) as failed:
            check_lr_reading(finding, good, high)
        assert not any(s in str(failed.value) for s in secrets), failed.value
        assert not any(w in str(failed.value) for w in ("still falling", "stopped falling", "too low", "too high"))
    assert check_lr_reading(finding, finding.steepest, finding.diverged_at or last)
    with pytest.raises(CheckFailed, match="no round named 'good'"):
        check_lr_rounds(ftlab.Lab(tmp_path / "lab"), 1e-3, 1e-1)


def test_a_sweep_space_with_nothing_to_try_is_named_before_any_round(tmp_path):
    import warnings

    import ftlab

    lab = ftlab.Lab(tmp_path / "lab")
    baseline = ftlab.RoundConfig.preset("cpu-tiny")
    for space, named in (({"learning_rate": []}, r"space\['learning_rate'\] = \[\]: no values to try; give the values to "
                                                  r"compare with the baseline's 0\.001"),
                         ({"lora_r": 8}, r"space\['lora_r'\] = 8: give a list of values to try, e.g. \{'lora_r': \[16,")):
        with pytest.raises(ValueError, match=named):
            lab.sweep(baseline, space, None, None, [], [])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match=r"\[\]: no values"):
        warnings.simplefilter("always")
        lab.sweep(baseline, {"lora_r": [16], "learning_rate": []}, None, None, [], [])
    assert [str(w.message) for w in caught] == ["space['lora_r'] = [16] holds only the baseline's value: no round tries "
                                                "another lora_r"]
    assert not (tmp_path / "lab").exists()  # nothing trained, nothing written
