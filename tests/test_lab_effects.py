"""The lab's conclusions: the effect of one knob against the spread of repeats, curve labels, failure cells."""

import math

import matplotlib
import pytest

from ftlab.lab.effects import effect
from ftlab.lab.round import Round
from ftlab.lab.table import failure_cell, plot_label, rounds_table

matplotlib.use("Agg")


def _round(id, eval_loss, lr=1e-3, seed=42, repeat_of=None, name=None, status="succeeded", failure=None):
    record = {"id": id, "name": name, "status": status, "config": {"learning_rate": lr, "seed": seed, "lora_r": 16},
              "repeat_of": repeat_of, "metrics": {"eval_loss": eval_loss} if eval_loss is not None else {},
              "failure": failure, "data": {}, "template": {}, "base_model": "tiny"}
    return Round(f"/nonexistent/round-{id:03d}", record)


def _lab(baseline_losses, changed_losses):
    rounds = [_round(1, baseline_losses[0], name="baseline"), _round(2, changed_losses[0], lr=2e-4, name="lr / 5")]
    for k, loss in enumerate(baseline_losses[1:], start=1):
        rounds.append(_round(len(rounds) + 1, loss, seed=42 + k, repeat_of=1, name="baseline"))
    for k, loss in enumerate(changed_losses[1:], start=1):
        rounds.append(_round(len(rounds) + 1, loss, lr=2e-4, seed=42 + k, repeat_of=2, name="lr / 5"))
    return rounds


def test_a_change_wider_than_the_spread_of_three_repeats_is_beyond_noise():
    rounds = _lab([0.69, 0.70, 0.71], [0.80, 0.82, 0.81])
    found = effect(rounds, rounds[0], rounds[1])
    assert found.knob == "learning_rate 0.001 -> 0.0002"
    assert found.difference == pytest.approx(0.11)
    # pooled sd 0.01, standard error 0.01 * sqrt(2/3): t = 0.11 / 0.008165 = 13.5 > 2.776 (df 4)
    assert found.standard_error == pytest.approx(0.01 * math.sqrt(2 / 3))
    assert found.needed == pytest.approx(2.776) and found.beyond_noise and not found.better
    assert "beyond noise: worse" in str(found) and "(n=3)" in str(found)


def test_a_change_inside_the_spread_is_within_noise():
    rounds = _lab([0.69, 0.75, 0.71], [0.72, 0.70, 0.76])
    found = effect(rounds, rounds[0], rounds[1])
    assert not found.beyond_noise and "within noise" in str(found)


def test_two_repeats_are_refused_and_a_seed_alone_is_not_a_knob():
    rounds = _lab([0.69, 0.70], [0.80, 0.82, 0.81])
    with pytest.raises(ValueError, match=r"has 2 successful repeat\(s\).*at least 3: lab.rerun\(1\)"):
        effect(rounds, rounds[0], rounds[1])
    with pytest.raises(ValueError, match="differ only in their seed"):
        effect(rounds, rounds[0], rounds[2])


def test_curves_are_labelled_by_name_and_changed_knob_never_round_n():
    rounds = _lab([0.69, 0.70, 0.71], [0.80, 0.82, 0.81])
    table = rounds_table(rounds[:2], baseline=1)
    assert plot_label(rounds[0], table) == "baseline"
    assert plot_label(_round(9, 0.7, name="first"), rounds_table([_round(9, 0.7, name="first")])) == "first (baseline)"
    assert plot_label(rounds[1], table) == "lr / 5 (learning_rate=0.0002)"


def test_the_failure_cell_names_the_row_and_field_of_bad_data():
    failure = {"kind": "data format", "message": "DataFormatError: 2 problem(s) in the data:", "advice": "",
               "findings": [{"row": 5, "field": "messages[1].role", "message": "unknown role 'robot'", "file": "train"},
                            {"row": 9, "field": "messages", "message": "empty", "file": "train"}]}
    cell = failure_cell(failure)
    assert cell == "data format: train, row 5, field 'messages[1].role': unknown role 'robot' (and 1 more)"
    table = rounds_table([_round(1, None, status="failed", failure=failure)])
    assert table.at[1, "failure"] == cell


class _FakeLab:
    def __init__(self, rounds):
        self._rounds = rounds

    def rounds(self):
        return self._rounds

    def round(self, id):
        return next(r for r in self._rounds if id in (r.id, r.name))

    def effect(self, baseline, changed):
        return effect(self._rounds, self.round(baseline), self.round(changed))


def test_exercise_04_checks_say_what_is_wrong_without_the_right_numbers():
    from ftlab.course import checks

    lab = _FakeLab(_lab([0.69, 0.70, 0.71], [0.80, 0.82, 0.81]))
    found = lab.effect(1, 2)
    assert checks.check_effect_by_hand(lab, 1, 2, found.difference, found.standard_error, True)
    wrong = {"sign": (-found.difference, found.standard_error, True), "size": (0.05, found.standard_error, True),
             "too large": (found.difference, 0.1, True), "decision": (found.difference, found.standard_error, False)}
    for why, answer in wrong.items():
        with pytest.raises(checks.CheckFailed) as raised:
            checks.check_effect_by_hand(lab, 1, 2, *answer)
        message = str(raised.value)
        assert "Hint:" in message and f"{found.difference:.2f}"[:4] not in message and "0.0082" not in message, why
    short = _FakeLab(_lab([0.69, 0.70], [0.80, 0.82, 0.81]))
    with pytest.raises(checks.CheckFailed, match="lab.rerun"):
        checks.check_repeats(short, 1, 2)
    with pytest.raises(checks.CheckFailed, match="section 1 first"):
        checks.check_effect_by_hand(short, 1, 2, 0.1, 0.01, True)


# ------------------------------------------------------------------------------------------ scores and versions
def test_an_effect_reads_a_score_as_better_higher_and_an_unknown_metric_must_be_declared():
    from ftlab.lab.effects import Effect

    up = ((0.30, 0.31, 0.29), (0.60, 0.61, 0.59))  # seed 004's accuracy, doubled by a knob
    assert Effect("lr", "exact_match", *up).better and not Effect("lr", "eval_loss", *up).better
    assert "beyond noise: better" in str(Effect("lr", "overall_accuracy", *up))
    with pytest.raises(ValueError, match="'wer'.*higher_is_better"):
        Effect("lr", "wer", *up)
    assert not Effect("lr", "wer", *up, higher_is_better=False).better
    rounds = _lab([0.69, 0.70, 0.71], [0.80, 0.82, 0.81])
    for r in rounds:  # the same numbers as a score, kept beside the loss
        r.record["metrics"] = {"eval_loss": 1.0, "exact_match": r.record["metrics"]["eval_loss"], "scores": ["exact_match"]}
    assert effect(rounds, rounds[0], rounds[1], "exact_match").better


def test_a_score_recorded_the_old_way_is_found_by_name_beside_the_losses():
    old = _round(1, 0.7)
    old.record["metrics"]["score"] = {"exact_match": 0.375}  # before scores sat beside the losses
    assert old.metrics["exact_match"] == 0.375 and old.scores == {"exact_match": 0.375} and "score" not in old.metrics
    assert rounds_table([old]).at[1, "exact_match"] == 0.375


VERSIONS = {"ftlab": "0.1.0", "torch": "2.13.0", "transformers": "5.5.0", "trl": "1.16.0", "peft": "0.21.2",
            "bitsandbytes": "0.50.2", "datasets": "5.2.0"}


def test_rounds_on_other_library_versions_are_marked_and_no_effect_is_called_across_them():
    import warnings

    from ftlab.lab.table import compare_rounds

    rounds = _lab([0.69, 0.70, 0.71], [0.80, 0.82, 0.81])
    for r in rounds:  # the changed round and its repeats ran after an upgrade of transformers
        r.record["versions"] = {**VERSIONS, **({"transformers": "5.15.0"} if r.record["config"]["learning_rate"] != 1e-3
                                               else {})}
    table = rounds_table(rounds)
    assert table.at[1, "versions"] == "transformers 5.5.0" and table.at[2, "versions"] == "transformers 5.15.0"
    assert table.at[2, "changed"] == "learning_rate, versions" and [2, "versions"] in table.attrs["differs"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        comparison = compare_rounds(rounds[:2], table)
    assert any("different library versions (transformers 5.5.0 -> 5.15.0)" in str(w.message) for w in caught)
    assert "versions" in comparison.table.columns
    with pytest.raises(ValueError, match=r"transformers 5.5.0 -> 5.15.0.*no difference across them is called beyond"):
        effect(rounds, rounds[0], rounds[1])
    same = _lab([0.69, 0.70, 0.71], [0.80, 0.82, 0.81])
    for r in same:
        r.record["versions"] = dict(VERSIONS, datasets="9.9")  # a library outside the compared stack
    assert "versions" not in rounds_table(same).columns and effect(same, same[0], same[1]).beyond_noise


def test_an_accuracy_collapse_is_a_fall_against_the_other_rounds_with_a_finite_loss():
    from ftlab.config import RoundConfig
    from ftlab.lab.failures import COLLAPSE, collapse

    config = RoundConfig.preset("cpu-tiny", learning_rate=1.5e-3)
    assert collapse({"exact_match": 0.0}, {"exact_match": 0.3}, config, 0.4).kind == COLLAPSE  # seed 004's round
    assert collapse({"exact_match": 0.07}, {"exact_match": 0.3}, config, 0.4) is not None  # below a quarter
    assert collapse({"exact_match": 0.1}, {"exact_match": 0.3}, config, 0.4) is None  # a third: worse, not collapsed
    assert collapse({"exact_match": 0.01}, {"exact_match": 0.05}, config, 0.4) is not None  # near zero, from above it
    assert collapse({"exact_match": 0.0}, {"exact_match": 0.02}, config, 0.4) is None  # nothing to fall from
    assert collapse({"exact_match": 0.0}, {}, config, 0.4) is None  # no other round on these eval rows
    assert collapse({"exact_match": 0.0}, {"exact_match": 0.3}, config, float("nan")) is None  # a divergence
    assert collapse({"wer": 0.0}, {"wer": 0.3}, config, 0.4) is None  # which way is better is not known: not read
    assert "0.0005 instead of 0.0015" in collapse({"f1": 0.0}, {"f1": 0.5}, config, 0.4).advice
