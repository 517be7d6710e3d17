"""The course's train/eval sets: distinct prompts, no prompt on both sides, and rounds that land between
the base model and perfect, so that the next round has room to move the metric."""

import pytest

import ftlab
from ftlab.config import RoundConfig
from ftlab.data import COURSE_SETS, arithmetic, course_set, dedup, split
from ftlab.evaluation.scoring import base_vs_tuned, discriminates


def _prompts(rows) -> list[str]:
    return [row["messages"][0]["content"] for row in rows]


@pytest.mark.parametrize("name", sorted(COURSE_SETS))
def test_each_course_set_has_distinct_prompts_and_none_in_both_sides(name):
    train, evaluation = course_set(name)
    assert len(set(_prompts(evaluation))) == len(evaluation) == COURSE_SETS[name][2]
    assert len(set(_prompts(train))) == len(train) > 2 * len(evaluation)
    assert not set(_prompts(train)) & set(_prompts(evaluation))
    assert not ftlab.data.leakage(train, evaluation)  # the library's own check agrees
    assert course_set(name) == (train, evaluation)  # the same rows on every run


def test_the_word_problem_split_of_chapter_01_has_no_duplicate_and_no_shared_prompt():
    rows, _ = dedup(arithmetic(600, seed=0, duplicates=0.3), key="prompt")
    train, evaluation = split(rows, eval_size=60, seed=0, quiet=True)
    assert len(set(evaluation["messages"][i][0]["content"] for i in range(len(evaluation)))) == len(evaluation)
    assert not ftlab.data.leakage(train, evaluation)


def test_discriminates_needs_room_on_both_sides():
    assert discriminates(base=0.3, tuned=0.7) and discriminates(base=4.9, tuned=0.4, perfect=0.0)
    assert not discriminates(base=0.3, tuned=1.0)  # perfect: the next round cannot show a gain
    assert not discriminates(base=0.3, tuned=0.31)  # within the tolerance of the base
    assert not discriminates(base=0.3, tuned=0.2)  # worse than the base


def test_chapter_03_round_lands_strictly_between_the_base_model_and_perfect(tiny, tmp_path):
    """Chapter 03's data and knobs: token F1 (its main metric) rises from the base but stays below 1."""
    model, tokenizer = tiny
    train, evaluation = course_set("evaluation")
    config = RoundConfig.preset("cpu-tiny", max_steps=60, eval_steps=None)
    result = ftlab.train_round(config, model, tokenizer, train, evaluation, output_dir=str(tmp_path))
    table, _, _ = base_vs_tuned(result.model, tokenizer, evaluation, with_perplexity=False)
    base, tuned = table.loc["f1", "base"], table.loc["f1", "tuned"]
    assert table.loc["rows", "tuned"] == 40
    assert discriminates(base, tuned, perfect=1.0, tolerance=0.05), (base, tuned)
    assert table.loc["exact_match", "tuned"] < 1.0


def test_the_demo_sets_round_lowers_eval_loss_but_not_to_zero(tiny, tmp_path):
    """Chapters 00, 04 and 05 judge rounds by eval loss on the demo set: it falls, with room left."""
    model, tokenizer = tiny
    train, evaluation = course_set("demo")
    config = RoundConfig.preset("cpu-tiny", max_steps=40, eval_steps=None)
    result = ftlab.train_round(config, model, tokenizer, train, evaluation, output_dir=str(tmp_path))
    assert discriminates(result.eval_loss_before, result.eval_loss, perfect=0.0, tolerance=0.05)
