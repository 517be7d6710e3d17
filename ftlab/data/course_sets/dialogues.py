"""A multi-turn course data set in which the last answer depends on the first turn.

Every conversation has three exchanges: the user says their name, asks one of the skills ftlab's tiny
model was pre-trained on (doubling or adding numbers, which no name can be mistaken for), then asks for
their name back. The third answer can only be right if the model reads the conversation two turns back;
chapter 06 trains on every assistant turn (ftlab's chat mask) and measures how many held-out third
answers come out right. Some conversations open with a system turn, which carries no loss, as in real
chat data.

The evaluation conversations use names that never occur in training, so a right third answer is
copied from the conversation, not remembered from the training rows; every conversation is unique
(no duplicate within or across the two sides).
"""

from __future__ import annotations

import random

from ftlab.data.course_sets.synthetic import NAMES, SKILLS
from ftlab.data.formats import chat_row, conversation_text

TASK = "remember_name"
OPENINGS = ("Hello, I am {name}.", "My name is {name}.")
QUESTION = "What is my name?"
SYSTEM = "Be brief."
MIDDLE_SKILLS = ("double", "add")


def dialogue(rng: random.Random, name: str) -> dict:
    """One three-exchange conversation with ``name``: greeting, a known skill, the name asked back."""
    question, answer = SKILLS[rng.choice(MIDDLE_SKILLS)](rng)
    system = SYSTEM if rng.random() < 0.2 else None
    opening = rng.choice(OPENINGS).format(name=name)
    return chat_row((opening, f"Hello, {name}!"), (question, answer), (QUESTION, f"Your name is {name}."),
                    system=system, task=TASK)


def _unique(rng: random.Random, names: list[str], n: int, seen: set[str]) -> list[dict]:
    rows = []
    for _ in range(50 * n):  # the space is large (names x skills x numbers): duplicates are rare redraws
        if len(rows) == n:
            return rows
        row = dialogue(rng, rng.choice(names))
        key = conversation_text(row)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    raise ValueError(f"could not draw {n} distinct conversations from {len(names)} names; ask for fewer")


def dialogues(n: int = 600, eval_size: int = 24, eval_names: int = 12, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(train, evaluation)``: ``n`` and ``eval_size`` distinct three-exchange conversations.

    The ``eval_names`` names of the evaluation side never occur in training, and no conversation
    occurs twice (``ftlab.data.leakage(train, evaluation)`` finds nothing). Deterministic in ``seed``.
    """
    if not 0 < eval_names < len(NAMES):
        raise ValueError(f"eval_names must be between 1 and {len(NAMES) - 1} (there are {len(NAMES)} names)")
    rng = random.Random(seed)
    names = list(NAMES)
    rng.shuffle(names)
    held_out, seen = names[:eval_names], set()
    evaluation = _unique(rng, held_out, eval_size, seen)
    train = _unique(rng, names[eval_names:], n, seen)
    return train, evaluation


def last_answers(rows: list[dict]) -> tuple[list[list[dict]], list[str]]:
    """Each conversation up to its last answer (the prompt to ask), and that answer (the reference)."""
    return [row["messages"][:-1] for row in rows], [row["messages"][-1]["content"] for row in rows]
