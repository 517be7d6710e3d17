"""ftlab's own small instruction tasks, generated offline and deterministically.

They serve two purposes. The *skills* (colours, doubling, adding, greeting, opposites, ...) are what
ftlab's tiny model is briefly pre-trained on, so that it starts as a small "chat model" that already
follows simple instructions. The *new tasks* are never seen in pre-training: fine-tuning the tiny
model on one of them on a CPU shows real, measurable learning, which is the point of the course.
Every row is a chat: ``{"messages": [user, assistant], "task": name}``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ftlab.data.formats import chat_row

THINGS = {  # one canonical thing per colour, so every answer has exactly one right form
    "red": "apple",
    "yellow": "banana",
    "green": "grass",
    "blue": "sky",
    "white": "snow",
    "black": "coal",
    "orange": "carrot",
    "pink": "flamingo",
}
NAMES = ("Anna Ben Chen Dara Eli Farah Gus Hana Ivan Jun Kofi Lena Mia Noor Omar Pia Ravi Sara Tom Uma "
         "Vik Wen Yara Zoe Ali Bea Cai Dev Ema Finn Gia Hugo Ines Jack Kai Lior Maya Nico Olga Paul Rosa "
         "Sam Tara Ugo Vera Will Xena Yuki Zack Ada Bo Cleo Dan Eva Fox Gail Hal Ida Joe Kim").split()
OPPOSITES = {"hot": "cold", "big": "small", "up": "down", "day": "night", "fast": "slow",
             "old": "new", "happy": "sad", "open": "closed", "left": "right", "wet": "dry"}
OPPOSITES.update({v: k for k, v in list(OPPOSITES.items())})

Task = Callable[[random.Random], tuple[str, str]]


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _colour_of(rng: random.Random) -> tuple[str, str]:
    colour, thing = rng.choice(list(THINGS.items()))
    return f"What color is the {thing}?", f"The {thing} is {colour}."


def _name_thing(rng: random.Random) -> tuple[str, str]:
    colour = rng.choice(list(THINGS))
    return f"Name {_a(colour)} thing.", f"{THINGS[colour].capitalize()}."


def _double(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(0, 49)
    return f"Double {n}.", f"{2 * n}"


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 29), rng.randint(0, 29)
    return f"Add {a} and {b}.", f"{a + b}"


def _next_number(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(0, 98)
    return f"What comes after {n}?", f"{n + 1}"


def _greet(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(NAMES)
    return f"Say hello to {name}.", f"Hello, {name}!"


def _opposite(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(list(OPPOSITES))
    return f"What is the opposite of {word}?", f"The opposite of {word} is {OPPOSITES[word]}."


# New tasks: never in pre-training. Each reuses known words in a new way, as a real fine-tune does.
def _greet_politely(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(NAMES)
    return f"Greet {name} politely.", f"Good day to you, {name}."


def _double_and_name(rng: random.Random) -> tuple[str, str]:
    n, colour = rng.randint(0, 49), rng.choice(list(THINGS))
    return f"Double {n} and name {_a(colour)} thing.", f"{2 * n} and {THINGS[colour]}."


SKILLS: dict[str, Task] = {
    "colour_of": _colour_of,
    "name_thing": _name_thing,
    "double": _double,
    "add": _add,
    "next_number": _next_number,
    "greet": _greet,
    "opposite": _opposite,
}
NEW_TASKS: dict[str, Task] = {"greet_politely": _greet_politely, "double_and_name": _double_and_name}
TASKS: dict[str, Task] = {**SKILLS, **NEW_TASKS}


def instructions(n: int, tasks: str | list[str] = "greet_politely", seed: int = 0) -> list[dict]:
    """``n`` chat rows drawn from the named tasks (``"skills"`` means all pre-training skills).

    >>> instructions(1, "double", seed=1)[0]["messages"][0]["content"]
    'Double 8.'
    """
    names = list(SKILLS) if tasks == "skills" else [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {sorted(TASKS)} or 'skills'")
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        task = names[i % len(names)]
        prompt, answer = TASKS[task](rng)
        rows.append(chat_row((prompt, answer), task=task))
    return rows


def split_train_eval(rows: list[dict], eval_size: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Lists for the synthetic tasks' quick demos: one row per distinct prompt on each side, none in both.

    The tasks draw at random, so a prompt can come up many times; a repeated row is trained on again
    and again and says nothing new, and a repeat across the split would make eval a test of memory.
    Eval takes ``eval_size`` distinct prompts (fewer if the rows hold fewer); train keeps the first row
    of every other prompt. For a learner's own data use ``ftlab.data.dedup`` and ``ftlab.data.split``:
    they report what they removed, return Datasets and record a fingerprint of each side.
    """
    rng = random.Random(seed)
    rows = list(rows)
    rng.shuffle(rows)
    evaluation, train, seen = [], [], set()
    for row in rows:
        prompt = row["messages"][0]["content"]
        if prompt in seen:
            continue
        seen.add(prompt)
        (evaluation if len(evaluation) < eval_size else train).append(row)
    return train, evaluation


# The course's own train/eval sets: (task, rows drawn, eval prompts). Every chapter that trains uses one.
COURSE_SETS = {
    "demo": ("greet_politely", 600, 12),  # chapters 00, 04, 05, exercises 04 and 05, `ftlab demo`
    "evaluation": ("double_and_name", 1200, 40),  # chapter 03 and exercise 03
}


def course_set(name: str = "demo", seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(train, eval)`` of one of the course's sets: distinct prompts on each side, no prompt in both.

    >>> train, evaluation = course_set("evaluation")
    >>> len(evaluation), len({r["messages"][0]["content"] for r in train + evaluation}) == len(train + evaluation)
    (40, True)
    """
    if name not in COURSE_SETS:
        raise ValueError(f"no course set {name!r}; choose from {sorted(COURSE_SETS)}")
    task, drawn, eval_size = COURSE_SETS[name]
    return split_train_eval(instructions(drawn, task, seed=seed), eval_size=eval_size, seed=seed)
