"""Sample by category, split train from eval with no shared prompt, and fingerprint what was used.

* ``balance`` caps each category at a number of rows (seed 001 trained on 9,525 rows of each
  arithmetic category and a few hundred of each word-problem kind, not on the raw 800k rows).
* ``split`` holds out an eval set with **no prompt in both sides**: a prompt repeated in the data
  goes wholly to train or wholly to eval, so eval measures generalisation, not memory.
* ``fingerprint`` is a short content hash of a set of rows, independent of their order; record it
  with each run so two runs can be shown to have used the same data.
* ``leakage`` lists the eval rows whose prompt also occurs in train. Seed 000 had two runs with the
  same settings give different results because train and test had been swapped; fingerprints tell
  a swap, ``leakage`` tells an overlap.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

from ftlab.console.lines import warn
from ftlab.data.duplicates import key_texts
from ftlab.data.files import as_rows
from ftlab.data.loading import chat_dataset


def _group_indices(values) -> dict:
    groups: dict = {}
    for index, value in enumerate(values):
        groups.setdefault(value, []).append(index)
    return groups


def balance(rows, by: str = "category", per_category: int | dict | None = None, seed: int = 0):
    """Sample at most ``per_category`` rows of each value of column ``by``; returns ``(dataset, table)``.

    ``per_category``: a number for every category, a dict ``{category: number}`` (categories not in
    it keep all their rows; 0 drops a category), or None for the size of the smallest category. A
    category with fewer rows than asked keeps all of them, and the table says so. The sample is
    random but fixed by ``seed``; kept rows stay in their original order. ``table`` is a pandas
    DataFrame: category, rows before, rows after, and a note, with a total at the bottom.
    """
    import pandas as pd

    dataset = chat_dataset(rows)
    if by not in dataset.column_names:
        raise ValueError(f"there is no column {by!r} to balance by; the columns are {dataset.column_names}")
    groups = _group_indices(dataset[by])
    if per_category is None:
        per_category = min(len(indices) for indices in groups.values())
    rng = random.Random(seed)
    kept: list[int] = []
    table = []
    for category, indices in groups.items():
        label = "(missing)" if category is None else category
        if isinstance(per_category, dict) and category not in per_category:
            wanted, note = len(indices), "kept all (not in per_category)"
        else:
            wanted = per_category[category] if isinstance(per_category, dict) else per_category
            note = (f"sampled {wanted:,} of {len(indices):,}" if wanted < len(indices) else
                    f"kept all: only {len(indices):,} rows (asked for {wanted:,})" if wanted > len(indices) else
                    "kept all")
        chosen = rng.sample(indices, wanted) if wanted < len(indices) else indices
        kept += chosen
        table.append((label, len(indices), len(chosen), note))
    if isinstance(per_category, dict):
        table += [(c, 0, 0, "not in the data") for c in per_category if c not in groups]
    frame = pd.DataFrame(table, columns=["category", "before", "after", "note"])
    total = pd.DataFrame([("(total)", frame["before"].sum(), frame["after"].sum(), "")], columns=frame.columns)
    return dataset.select(sorted(kept)), pd.concat([frame, total], ignore_index=True)


def fingerprint(rows) -> str:
    """A 16-hex-digit content hash of ``rows`` (a Dataset, DataFrame or list of dicts), independent of order.

    Each row is written as JSON with sorted keys and without empty (None) values, hashed with sha256;
    the sorted row hashes are hashed again. Same rows in any order: same fingerprint. One changed
    character, one row more or less, or a duplicate: a different one. Case and spaces count.
    A text (a template), or rows that are not all dicts (bad data, recorded with its failure), are
    hashed whole as JSON. The one fingerprint of ftlab: the data chapter and the lab book both use it.
    """
    records = rows if isinstance(rows, str) else as_rows(rows)
    try:
        digests = sorted(hashlib.sha256(json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True,
                                                   ensure_ascii=False).encode()).digest() for row in records)
    except (AttributeError, TypeError):  # a text, a row that is not a dict, a value JSON cannot write
        return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return hashlib.sha256(b"".join(digests)).hexdigest()[:16]


def split(rows, eval_size: float | int = 0.1, seed: int = 0, by="prompt", quiet: bool = False):
    """Split into ``(train, eval)`` Datasets with no prompt in both; each side's fingerprint is recorded.

    ``eval_size``: a share of the rows (0.1) or a number of rows (200). ``by``: ``"prompt"`` (rows
    with the same normalised prompt stay together), ``"conversation"``, or a function of a row.
    Groups of rows are shuffled with ``seed`` and moved to eval until it holds ``eval_size`` rows (a
    group that would overshoot is skipped, so eval can be a few rows smaller). Rows keep their
    original order on each side. The fingerprints are printed and stored in ``dataset.info.description``.
    """
    dataset = chat_dataset(rows)
    total = len(dataset)
    wanted = round(eval_size * total) if isinstance(eval_size, float) else int(eval_size)
    if not 0 < wanted < total:
        raise ValueError(f"eval_size={eval_size} gives {wanted} eval rows out of {total}; "
                         "use a share between 0 and 1 or a number of rows smaller than the data")
    groups = list(_group_indices(key_texts(dataset, by)).values())
    random.Random(seed).shuffle(groups)
    held_out: list[int] = []
    for indices in groups:
        if len(held_out) + len(indices) <= wanted:
            held_out += indices
        if len(held_out) == wanted:
            break
    held = set(held_out)
    train = dataset.select([i for i in range(total) if i not in held])
    evaluation = dataset.select(sorted(held_out))
    name = by if isinstance(by, str) else "a custom key"
    prints = {}
    for side, part in (("train", train), ("eval", evaluation)):
        prints[side] = fingerprint(part)
        part.info.description = f"ftlab split {side}: {len(part)} rows, fingerprint {prints[side]}"
    if not quiet:
        print(f"Split {total:,} rows by {name}: train {len(train):,} (fingerprint {prints['train']}), "
              f"eval {len(evaluation):,} (fingerprint {prints['eval']}); no {name} is in both.")
    return train, evaluation


@dataclass(frozen=True)
class Leak:
    """An eval row whose prompt also occurs in train."""

    eval_row: int  # 1-based row number in eval
    train_rows: tuple[int, ...]  # 1-based row numbers in train holding the same prompt (the first 5)
    text: str  # the shared normalised prompt (or conversation)

    def __str__(self) -> str:
        text = self.text if len(self.text) <= 70 else self.text[:67] + "..."
        return f"eval row {self.eval_row} = train row(s) {', '.join(map(str, self.train_rows))}: {text}"


def leakage(train, eval, by="prompt") -> list[Leak]:
    """The eval rows whose prompt (or ``by``: "conversation", a function of a row) also occurs in train.

    An empty list means no overlap. A train/eval overlap makes eval scores measure memory; after a
    deliberate or accidental swap of rows between the two sides, the moved prompts show up here.
    """
    train_texts = key_texts(chat_dataset(train), by)
    where: dict[str, list[int]] = {}
    for number, text in enumerate(train_texts, start=1):
        rows = where.setdefault(text, [])
        if len(rows) < 5:
            rows.append(number)
    return [Leak(number, tuple(where[text]), text)
            for number, text in enumerate(key_texts(chat_dataset(eval), by), start=1) if text in where]


def warn_if_shared(train, eval, by="prompt") -> list[Leak]:
    """Warn, in one line, when eval rows share their prompt with train rows (``leakage``); returns the leaks.

    A lab round trained with them still runs (a learner may mean it), but its eval loss partly measures
    memory: the warning gives the share, the first pair of rows and how to hold rows out (chapter 01).
    """
    leaks = leakage(train, eval, by) if train is not None and eval is not None else []
    if leaks:
        noun = by if isinstance(by, str) else "key"
        whole = (f"every eval row shares its {noun}" if len(leaks) == len(eval) else
                 f"{len(leaks):,} of {len(eval):,} eval rows ({len(leaks) / len(eval):.0%}) share their {noun}")
        warn(f"{whole} with train rows (first: {leaks[0]}): their eval "
             "loss measures memory, not what the model learned. Hold rows out with ftlab.data.split(rows, "
             "eval_size=0.1), which keeps every prompt on one side; ftlab.data.leakage(train, eval) lists them all.",
             stacklevel=3)
    return leaks
