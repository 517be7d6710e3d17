"""ftlab.data's tools: dedup, balance, split / leakage / fingerprint, arithmetic, general, length report."""

import json
import math
import random
import re
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pandas as pd
import pytest

from ftlab.data import (
    arithmetic,
    balance,
    dedup,
    fingerprint,
    general,
    leakage,
    load,
    split,
    validate,
)
from ftlab.data.course_sets.arithmetic import CATEGORIES
from ftlab.templates import length_report


@pytest.fixture(scope="module")
def tokenizer():
    from ftlab.data.course_sets.synthetic import instructions
    from ftlab.models.tiny import build_tokenizer

    return build_tokenizer(instructions(200, "skills"))


def chat(user, answer, **extra):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra}


def prompt(row):
    return row["messages"][0]["content"]


def normalised(text):
    return " ".join(text.lower().split())


# --- dedup ---------------------------------------------------------------------------------------

def test_exact_dedup_ignores_case_and_whitespace_and_counts_repeats():
    rows = [chat(f"Question {i}?", f"Answer {i}.") for i in range(20)]
    rows += [chat("QUESTION 3?", "answer   3.")] * 4 + [chat(" question 7? ", "Answer 7.")] * 2
    rows += [chat("Question 3?", "A different answer.")]  # same prompt, other answer: not an exact duplicate
    random.Random(0).shuffle(rows)
    unique = {normalised(r["messages"][0]["content"]) + "|" + normalised(r["messages"][1]["content"]) for r in rows}
    kept, report = dedup(rows)
    assert (report.rows_before, report.rows_after) == (len(rows), len(unique))
    assert report.exact_removed == len(rows) - len(unique)
    assert len(kept) == len(unique) == 21
    assert report.most_repeated[0][1] == 5 and "question 3?" in report.most_repeated[0][0]
    assert [count for _, count in report.most_repeated] == [5, 3]
    assert "27 rows -> 21" in repr(report)
    first_seen = {}
    for number, row in enumerate(rows, start=1):  # every dropped row points at the first copy
        key = normalised(row["messages"][0]["content"]) + "|" + normalised(row["messages"][1]["content"])
        first_seen.setdefault(key, number)
        if first_seen[key] != number:
            assert report.duplicate_of[number] == first_seen[key]


def test_dedup_on_the_prompt_alone():
    rows = [chat("Simplify 5/6.", f"Answer number {i}.") for i in range(6)] + [chat("Other?", "Yes.")]
    assert dedup(rows)[1].exact_removed == 0
    kept, report = dedup(rows, key="prompt")
    assert report.exact_removed == 5 and kept[0]["messages"][1]["content"] == "Answer number 0."


def shingles(text, k=5):
    return {text[i:i + k] for i in range(len(text) - k + 1)}


def test_near_dedup_drops_small_edits_and_keeps_different_texts():
    rng = random.Random(1)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(400)]
    texts = [" ".join(rng.choices(words, k=60)) for _ in range(30)]
    edited = []
    for text in texts[:8]:
        tokens = text.split()
        tokens[20] = "elephant"
        edited.append(" ".join(tokens))
    rows = [chat(t, "Noted.") for t in texts + edited]
    full = ["user: " + t + " assistant: noted." for t in texts + edited]
    for original, copy in zip(full[:8], full[30:], strict=True):  # the edits are truly near (exact Jaccard)
        a, b = shingles(original), shingles(copy)
        assert len(a & b) / len(a | b) > 0.94
    worst = max(len(shingles(x) & shingles(y)) / len(shingles(x) | shingles(y))
                for i, x in enumerate(full[:30]) for y in full[i + 1:30])
    assert worst < 0.5  # the originals are not near each other
    kept, report = dedup(rows, near=True, threshold=0.9)
    assert report.exact_removed == 0 and report.near_removed == 8 and len(kept) == 30
    assert {report.duplicate_of[31 + i] for i in range(8)} == set(range(1, 9))
    assert "elephant" in repr(report)


def test_dedup_removes_exactly_the_injected_arithmetic_duplicates():
    rows = arithmetic(600, seed=2, duplicates=0.3)
    assert len({json.dumps(r, ensure_ascii=False) for r in rows}) == 600 - 180
    kept, report = dedup(rows)
    assert report.exact_removed == 180 and len(kept) == 420
    counts = sorted(Counter(prompt(r) for r in rows).values(), reverse=True)
    assert [c for _, c in report.most_repeated] == counts[:10]
    assert counts[0] >= 10 * counts[len(counts) // 2]  # skewed: a few prompts repeat many times


# --- balance -------------------------------------------------------------------------------------

def test_balance_caps_each_category_and_reports_small_ones():
    rows = arithmetic(1500, seed=3)
    before = Counter(r["category"] for r in rows)
    sample, table = balance(rows, per_category=60, seed=42)
    after = Counter(sample["category"])
    assert after == {c: min(n, 60) for c, n in before.items()}
    table = table.set_index("category")
    small = [c for c, n in before.items() if n < 60]
    assert small and all(table.loc[c, "note"].startswith("kept all") for c in small)
    assert table.loc["(total)", "before"] == 1500 and table.loc["(total)", "after"] == len(sample)
    assert balance(rows, per_category=60, seed=42)[0].to_list() == sample.to_list()
    assert balance(rows, per_category=60, seed=43)[0].to_list() != sample.to_list()


def test_balance_with_a_dict_drops_and_keeps_as_asked():
    rows = arithmetic(800, seed=4)
    before = Counter(r["category"] for r in rows)
    sample, table = balance(rows, per_category={"addition": 10, "multiplication": 0})
    after = Counter(sample["category"])
    assert after["addition"] == 10 and "multiplication" not in after
    assert all(after[c] == n for c, n in before.items() if c not in ("addition", "multiplication"))


# --- split, fingerprint, leakage -------------------------------------------------------------------

def repeated_rows():
    rows = arithmetic(300, seed=5, duplicates=0.2)
    rows += [chat(prompt(r), "Another answer.", category=r["category"]) for r in rows[:20]]  # same prompts
    return rows


def test_split_shares_no_prompt_and_records_fingerprints(capsys):
    rows = repeated_rows()
    train, evaluation = split(rows, eval_size=0.2, seed=0)
    train_prompts = {normalised(prompt(r)) for r in train}
    eval_prompts = {normalised(prompt(r)) for r in evaluation}
    assert not train_prompts & eval_prompts
    assert len(train) + len(evaluation) == len(rows)
    assert round(0.2 * len(rows)) - 10 <= len(evaluation) <= round(0.2 * len(rows))
    out = capsys.readouterr().out
    assert fingerprint(train) in out and fingerprint(evaluation) in out
    assert fingerprint(evaluation) in evaluation.info.description
    again = split(rows, eval_size=0.2, seed=0, quiet=True)
    assert fingerprint(again[1]) == fingerprint(evaluation)
    assert fingerprint(split(rows, eval_size=0.2, seed=1, quiet=True)[1]) != fingerprint(evaluation)


def test_fingerprint_ignores_order_but_not_content():
    rows = general()
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert fingerprint(rows) == fingerprint(shuffled) == fingerprint(load(rows, quiet=True))
    alpaca = [{"instruction": "Say hi.", "output": "Hi"}, {"instruction": "Add 1 and 2.", "input": "", "output": "3"}]
    assert fingerprint(pd.DataFrame(alpaca)) == fingerprint(alpaca)  # a missing cell counts as absent
    changed = json.loads(json.dumps(rows))
    changed[5]["messages"][1]["content"] += "!"
    assert fingerprint(changed) != fingerprint(rows)
    assert fingerprint(rows + rows[:1]) != fingerprint(rows)


def test_leakage_finds_an_overlap_and_a_swap_changes_fingerprints():
    rows = arithmetic(400, seed=6)
    train, evaluation = split(rows, eval_size=40, seed=0, quiet=True)
    assert leakage(train, evaluation) == []
    # Overlap: eval made from another seed's split, as when files from two runs get mixed.
    other_eval = split(rows, eval_size=40, seed=1, quiet=True)[1]
    leaks = leakage(train, other_eval)
    train_prompts = [normalised(prompt(r)) for r in train]
    expected = [i for i, r in enumerate(other_eval, start=1) if normalised(prompt(r)) in set(train_prompts)]
    assert [leak.eval_row for leak in leaks] == expected and expected
    for leak in leaks:
        assert normalised(prompt(other_eval[leak.eval_row - 1])) == normalised(prompt(train[leak.train_rows[0] - 1]))
    # Swap: five train rows moved into eval (and kept in train) all show up, at their eval rows.
    moved = [train[i] for i in (3, 50, 100, 200, 300)]
    polluted = evaluation.to_list() + moved
    assert [leak.eval_row for leak in leakage(train, polluted)] == list(range(41, 46))



def test_fingerprints_reveal_swapped_files(tmp_path):
    # Seed 000: two runs "with the same settings" differed because train and test had been swapped.
    # A whole swap leaves no overlap for leakage() to see; the fingerprints recorded at split time do.
    train, evaluation = split(arithmetic(300, seed=9), eval_size=30, seed=0, quiet=True)
    recorded = {"train": fingerprint(train), "eval": fingerprint(evaluation)}
    train.to_json(tmp_path / "eval.jsonl", force_ascii=False)  # the mistake: names swapped on disk
    evaluation.to_json(tmp_path / "train.jsonl", force_ascii=False)
    reloaded_train = load(tmp_path / "train.jsonl", quiet=True)
    reloaded_eval = load(tmp_path / "eval.jsonl", quiet=True)
    assert leakage(reloaded_train, reloaded_eval) == []
    assert fingerprint(reloaded_train) == recorded["eval"] != recorded["train"]
    assert fingerprint(reloaded_eval) == recorded["train"]


# --- arithmetic ----------------------------------------------------------------------------------

def one_decimal(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    return str((Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


ZH_PAID = {"九五": 95, "九": 90, "八五": 85, "八": 80, "七五": 75, "七": 70, "六": 60, "五": 50}


def expected_answer(category: str, question: str) -> str | None:
    """The answer recomputed from the question's text alone (None for categories not checked here)."""
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    if category in ("addition", "subtraction", "multiplication"):
        a, b = numbers
        return str(a + b if category == "addition" else a - b if category == "subtraction" else a * b)
    if category == "division":
        return one_decimal(Fraction(numbers[0], numbers[1]))
    if category == "equation":
        a, b, c = numbers
        sign = re.search(r"x ([+-])", question).group(1)
        return one_decimal(Fraction(c - b if sign == "+" else c + b, a))
    if category == "square_root":
        return one_decimal(Fraction(Decimal(numbers[0]).sqrt()))
    if category == "simplify_fraction":
        a, b = numbers
        return f"{Fraction(a, b).numerator}/{Fraction(a, b).denominator}"
    if category == "power":
        return str(numbers[0] ** numbers[1])
    if category == "average":
        scores = [n for n in numbers if n >= 60]  # the scores, not "4 tests"
        return one_decimal(Fraction(sum(scores), len(scores)))
    if category == "discount":
        if "折" in question:
            paid = ZH_PAID[re.search(r"打(.+?)折", question).group(1)]
        else:
            paid = 100 - numbers[1]
        return one_decimal(Fraction(numbers[0] * paid, 100))
    return None


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_arithmetic_answers_are_right(lang):
    rows = arithmetic(1300, lang=lang, seed=7, weights=dict.fromkeys(CATEGORIES, 1))
    final = r"The answer is (.+)\.$" if lang == "en" else r"答案是(.+)。$"
    checked = Counter()
    for row in rows:
        question, reply = row["messages"][0]["content"], row["messages"][1]["content"]
        answer = re.search(final, reply.splitlines()[-1]).group(1)
        expected = expected_answer(row["category"], question)
        if expected is not None:
            assert answer == expected, (question, reply)
            checked[row["category"]] += 1
    assert len(checked) == 10 and min(checked.values()) > 50
    assert set(r["category"] for r in rows) == set(CATEGORIES)
    assert validate(rows) == []


def test_arithmetic_is_deterministic_and_chinese_is_chinese():
    for lang in ("en", "zh"):
        assert arithmetic(100, lang, seed=1) == arithmetic(100, lang, seed=1)
        assert arithmetic(100, lang, seed=1) != arithmetic(100, lang, seed=2)
    zh = arithmetic(200, "zh", seed=1)
    assert all(re.search(r"[\u4e00-\u9fff]", prompt(r)) for r in zh)
    assert any("打八折" in prompt(r) for r in arithmetic(600, "zh", seed=1, weights={"discount": 1}))
    assert len({prompt(r) for r in arithmetic(2000, seed=0)}) == 2000  # no duplicates unless asked


def test_chinese_end_to_end_load_dedup_split(tmp_path):
    rows = arithmetic(500, "zh", seed=8, duplicates=0.3)
    path = tmp_path / "数学.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    loaded = load(path, quiet=True)
    assert loaded.to_list() == rows  # Chinese text survives exactly
    unique, report = dedup(loaded, near=True)
    assert report.exact_removed == 150
    assert len(unique) == len({prompt(r) for r in rows}) - report.near_removed
    train, evaluation = split(unique, eval_size=50, seed=0, quiet=True)
    assert len(evaluation) == 50 and leakage(train, evaluation) == []
    assert all("答案是" in r["messages"][1]["content"] for r in evaluation)


# --- general -------------------------------------------------------------------------------------

def test_general_set_is_valid_varied_and_unique():
    rows = general()
    assert 60 <= len(rows) <= 100 and validate(rows) == []
    assert len(set(r["category"] for r in rows)) >= 6
    assert dedup(rows)[1].exact_removed == 0
    assert general(5) == rows[:5]
    with pytest.raises(ValueError):
        general(1000)


# --- length report -------------------------------------------------------------------------------

def test_length_report_counts_what_the_trainer_sees(tokenizer):
    from ftlab.templates.template import Template

    rows = general() + [chat("Tell me more. " * 30, "Here is more. " * 30)]
    report = length_report(rows, tokenizer, max_length=96, batch_size=4)
    expected = [len(Template.chat(tokenizer).encode(r["messages"])[0]) for r in rows]
    assert report.lengths == expected
    assert report.truncated_rows == [i for i, n in enumerate(expected, start=1) if n > 96]
    assert report.truncated_share == pytest.approx(len(report.truncated_rows) / len(rows))
    cut = [min(n, 96) for n in expected]
    batches = [cut[i:i + 4] for i in range(0, len(cut), 4)]
    padded = sum(max(b) * len(b) for b in batches)
    assert report.padding_waste == pytest.approx(1 - sum(cut) / padded)
    assert report.padding_waste_sorted <= report.padding_waste
    assert "longer than max_length=96" in repr(report)


def test_length_report_plot_draws_the_cutoff(tokenizer):
    import matplotlib

    matplotlib.use("Agg")
    report = length_report(load(general(20), quiet=True), tokenizer, max_length=64)
    ax = report.plot()
    assert sum(p.get_height() for p in ax.patches) == 20
    assert any(list(line.get_xdata()) == [64, 64] for line in ax.get_lines())
    assert math.isclose(report.truncated_share, sum(n > 64 for n in report.lengths) / 20)
