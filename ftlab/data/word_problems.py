"""Synthetic arithmetic word problems in English and Chinese, modelled on seed 001's contest data.

Seed 001 fine-tuned on arithmetic problems in thirteen categories: equations, the four operations,
and word problems (discount, average, sales, rectangle area, powers, square root, mass, simplifying
a fraction), with short step-by-step reasoning and answers rounded to one decimal. ``arithmetic``
makes rows like those, offline and deterministically (same ``seed``, same rows), each with a
``category`` column, ending with "The answer is X." or "答案是X。" so answers can be checked exactly.
How each category's problems are written and solved is ``ftlab.data.problem_makers``.

The default category mix is skewed like raw contest data (mostly equations and the four operations,
a few word problems of each kind), so ``balance`` has something to do; pass ``weights`` to change
it. Without ``duplicates`` every prompt is unique; ``duplicates=0.3`` makes ~30% of the rows exact
copies, concentrated on a few prompts (seed 001 found one prompt 480 times), so ``dedup`` does too.
"""

from __future__ import annotations

import copy
import random

from ftlab.data.problem_makers import MAKERS

# The raw data's skew: the four operations and equations dominate, word problems are rare.
WEIGHTS = {"equation": 18, "addition": 18, "subtraction": 18, "multiplication": 8, "division": 18,
           "discount": 3, "average": 2.5, "sales": 2.5, "rectangle_area": 3, "power": 1, "square_root": 3.5,
           "mass": 1.5, "simplify_fraction": 3}
CATEGORIES = tuple(WEIGHTS)
FINAL = {"en": "The answer is {}.", "zh": "答案是{}。"}


def _row(question: str, steps: list[str], answer: str, category: str, lang: str) -> dict:
    reply = "\n".join([*steps, FINAL[lang].format(answer)])
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
            "category": category}


def arithmetic(n: int, lang: str = "en", seed: int = 0, duplicates: float = 0.0,
               weights: dict[str, float] | None = None) -> list[dict]:
    """``n`` arithmetic word problems as chat rows with a ``category`` column.

    ``lang``: "en" or "zh". ``seed``: same seed, same rows. ``duplicates``: the share of rows that are
    exact copies of other rows, skewed so that a few prompts repeat many times (0 means every prompt
    is unique). ``weights``: {category: weight} to draw categories (default ``WEIGHTS``, skewed like
    raw contest data; ``dict.fromkeys(CATEGORIES, 1)`` for an even mix). Every answer ends with "The
    answer is X." / "答案是X。"; non-integer answers are rounded half up to one decimal.

    >>> arithmetic(1, "zh", seed=3)[0]["messages"][1]["content"].splitlines()[-1]
    '答案是17.5。'
    """
    if lang not in FINAL:
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    if not 0 <= duplicates < 1:
        raise ValueError(f"duplicates is a share of the rows, between 0 and 1 (got {duplicates})")
    weights = WEIGHTS if weights is None else weights
    unknown = sorted(set(weights) - set(MAKERS))
    if unknown:
        raise ValueError(f"unknown categories {unknown}; choose from {list(CATEGORIES)}")
    rng = random.Random(f"ftlab-arithmetic-{seed}-{lang}")
    names, chances = list(weights), list(weights.values())
    copies = round(n * duplicates)
    rows, seen = [], set()
    while len(rows) < n - copies:
        for _ in range(1000):  # a new prompt, unless a small category (powers) has run out of them
            category = rng.choices(names, chances)[0]
            question, steps, answer = MAKERS[category](rng, lang == "zh")
            if question not in seen:
                break
        else:
            raise ValueError(f"cannot make {n - copies:,} different problems with these weights; "
                             "ask for fewer rows or add categories")
        seen.add(question)
        rows.append(_row(question, steps, answer, category, lang))
    if copies and rows:
        # Copies follow Zipf's law (weight 1/rank), as in scraped contest data: a few prompts repeat
        # many times, most repeated ones appear twice or three times.
        sources = rng.sample(rows, min(len(rows), max(5, copies // 4)))
        skew = [1 / rank for rank in range(1, len(sources) + 1)]
        rows += [copy.deepcopy(row) for row in rng.choices(sources, skew, k=copies)]
        rng.shuffle(rows)
    return rows
