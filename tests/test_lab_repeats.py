"""A round's repeats, grouped once and summarised once: the table, the compare view's error bars, the template."""

import math
import statistics

import matplotlib
import pytest

from ftlab.lab.repeats import Spread, spread
from ftlab.lab.round import Round
from ftlab.lab.table import markdown, rounds_table, spreads

matplotlib.use("Agg")

# eval losses of a baseline and of lr / 5, three seeds each: their sds round to 2 digits with a visible loss
BASELINE, CHANGED = [0.6871461, 0.6855243, 0.7102449], [3.4535331, 3.4427194, 3.4150013]


def _round(folder, id, eval_loss, lr=1e-3, seed=42, repeat_of=None, status="succeeded"):
    record = {"id": id, "name": "lr / 5" if lr != 1e-3 else "baseline", "status": status,
              "config": {"learning_rate": lr, "seed": seed, "lora_r": 16}, "repeat_of": repeat_of,
              "metrics": {"eval_loss": eval_loss, "train_loss": 1.0}, "failure": None, "data": {}, "template": {},
              "base_model": "tiny"}
    round_ = Round(folder / f"round-{id:03d}", record)
    round_.path.mkdir(parents=True)
    round_.update()
    return round_


def _rounds(folder):
    """Two rounds with two repeats each, a failed and a non-finite repeat of the baseline, and a lone round."""
    rounds = [_round(folder, 1, BASELINE[0]), _round(folder, 2, CHANGED[0], lr=2e-4)]
    for k in (1, 2):
        rounds.append(_round(folder, len(rounds) + 1, BASELINE[k], seed=42 + k, repeat_of=1))
        rounds.append(_round(folder, len(rounds) + 1, CHANGED[k], lr=2e-4, seed=42 + k, repeat_of=2))
    rounds.append(_round(folder, 7, 9.9, seed=45, repeat_of=1, status="diverged"))  # failed: not a value
    rounds.append(_round(folder, 8, "nan", seed=46, repeat_of=1))  # recorded as the text "nan": not a value
    rounds.append(_round(folder, 9, 0.5, lr=5e-3))  # no repeats: no spread
    return rounds


def test_the_table_keeps_the_unrounded_mean_and_sd_of_each_rounds_repeats(tmp_path):
    table = rounds_table(_rounds(tmp_path))
    column = table["eval loss over repeats"]
    for ids, losses in (((1, 3, 5, 7, 8), BASELINE), ((2, 4, 6), CHANGED)):
        for i in ids:  # every member of the group, a failed one too, shows the group's spread
            cell = column[i]
            assert isinstance(cell, Spread) and cell.n == 3
            assert cell.mean == statistics.mean(losses) and cell.sd == statistics.stdev(losses)
            assert cell.sd == pytest.approx(math.sqrt(sum((x - cell.mean) ** 2 for x in losses) / 2), rel=1e-12)
    assert column[9] == ""
    # shown as before: mean to 4 digits, sd to 2, the count; the Markdown and CSV show the same text
    shown = f"{statistics.mean(BASELINE):.4g} ± {statistics.stdev(BASELINE):.2g} (n=3)"
    assert str(column[1]) == shown == "0.6943 ± 0.014 (n=3)"
    assert f"| {shown} |" in markdown(table) and shown in table.to_string()
    assert [s.sd if s else None for s in spreads(table)] == [
        statistics.stdev(BASELINE if i in (1, 3, 5, 7, 8) else CHANGED) if i != 9 else None for i in table.index]
    assert spreads(table, "train loss") == [None] * len(table)  # no such column: no spread


def test_spread_of_one_value_has_no_sd_and_of_none_is_refused():
    assert spread([0.5]) == Spread(0.5, None, 1) and str(spread([0.5])) == "0.5 (n=1)"
    with pytest.raises(ValueError, match="no values"):
        spread([])


def test_an_effect_needs_two_values_on_each_side_and_shows_their_spread(tmp_path):
    from ftlab.lab.effects import Effect, effect

    rounds = _rounds(tmp_path)
    found = effect(rounds, rounds[0], rounds[1])
    assert (found.baseline, found.changed) == (tuple(BASELINE), tuple(CHANGED))  # failed and "nan" repeats left out
    assert f"eval loss {spread(BASELINE)} -> {spread(CHANGED)}," in str(found)
    with pytest.raises(ValueError, match="at least 2"):  # not a ZeroDivisionError from a one-value sd
        effect([rounds[0], rounds[-1]], rounds[0], rounds[-1], min_repeats=1)
    with pytest.raises(ValueError, match="1 baseline and 2 changed"):
        Effect("learning_rate", "eval_loss", (0.7,), (0.8, 0.9))


def test_compare_views_error_bars_are_the_unrounded_sd_of_the_repeats(tmp_path):
    pytest.importorskip("ipywidgets")
    from matplotlib.container import BarContainer

    import ftlab
    from ftlab.lab.widgets import Compare

    _rounds(tmp_path / "lab")
    lab = ftlab.Lab(tmp_path / "lab")
    view = Compare(lab)
    ids = [1, 2, 9]
    table = lab.table(baseline=1).loc[ids]
    bars = view.figure([lab.round(i) for i in ids], table).axes[1]
    (container,) = [c for c in bars.containers if isinstance(c, BarContainer)]
    assert [b.get_height() for b in container] == [BASELINE[0], CHANGED[0], 0.5]
    (segments,) = [c.get_segments() for c in container.errorbar.lines[2]]
    half = [(top[1] - bottom[1]) / 2 for bottom, top in segments]
    expected = [statistics.stdev(BASELINE), statistics.stdev(CHANGED), 0.0]
    assert half == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert abs(half[0] - float(f"{expected[0]:.2g}")) > 1e-4  # not the table's rounded text read back
    assert "repeat spread" in bars.get_title()


def test_compare_view_shows_a_score_by_name_with_its_direction_and_repeat_spread(tmp_path):
    pytest.importorskip("ipywidgets")
    from matplotlib.container import BarContainer

    import ftlab
    from ftlab.lab.widgets import Compare

    for r in _rounds(tmp_path / "lab"):  # a score beside each loss: exact match, a share of the answers
        loss = r.metrics["eval_loss"]
        r.update(metrics={**r.metrics, "exact_match": loss / 10 if loss != "nan" else "nan", "scores": ["exact_match"]})
    lab = ftlab.Lab(tmp_path / "lab")
    view = Compare(lab, metric="exact_match")
    ids = [1, 2, 9]
    bars = view.figure([lab.round(i) for i in ids], lab.table(baseline=1).loc[ids]).axes[1]
    (container,) = [c for c in bars.containers if isinstance(c, BarContainer)]
    assert [b.get_height() for b in container] == pytest.approx([BASELINE[0] / 10, CHANGED[0] / 10, 0.05])
    assert "exact_match (higher is better)" in bars.get_title() and "repeat spread" in bars.get_title()
    assert "(lower is better)" in Compare(lab, metric="eval_loss").figure(
        [lab.round(1)], lab.table(baseline=1).loc[[1]]).axes[1].get_title()
    with pytest.raises(ValueError, match="'wer'.*higher_is_better"):
        Compare(lab, metric="wer")


OTHER_CHAT = ("{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
              "{% if add_generation_prompt %}### assistant:\n{% endif %}")


def test_a_template_rebuilt_from_the_record_is_the_recorded_one(tiny_path, tmp_path):
    from transformers import AutoTokenizer

    from ftlab.data.splits import fingerprint
    from ftlab.lab.materials import recorded_template, template_text
    from ftlab.templates.template import Template

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    for k, given in enumerate((None, Template.alpaca(tokenizer), Template.chat(tokenizer, OTHER_CHAT))):
        style, text = template_text(tokenizer, given)  # recorded as lab.train records it
        folder = tmp_path / f"round-{k:03d}"
        folder.mkdir()
        (folder / "template.txt").write_text(text, encoding="utf-8")
        record = {"id": k, "template": {"style": style, "fingerprint": fingerprint(f"{style}\n{text}"),
                                        "file": "template.txt"}}
        rebuilt = recorded_template(Round(folder, record), tokenizer)
        assert template_text(tokenizer, rebuilt) == (style, text), given
        assert (rebuilt is None) == (given is None)  # the tokenizer's own chat template stays train_round's default
    old = Round(tmp_path / "round-009", {"id": 9})  # a record from before templates were recorded: the chat style
    assert recorded_template(old, tokenizer) is None
