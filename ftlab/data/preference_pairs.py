"""Preference pairs (chapter 08): a prompt, the answer to prefer (chosen) and the one to avoid (rejected).

A pair is ``{"prompt", "chosen", "rejected"}``, in one of two shapes, as TRL's ``DPOTrainer`` takes them:

- **chat**: ``prompt`` a list of turns ending with the user's, ``chosen`` and ``rejected`` one assistant turn each
  (``[{"role": "assistant", "content": ...}]``): the model sees them in its own chat format;
- **plain**: three strings, glued as they are (no template).

``load_pairs`` reads pairs from a list, a file (.jsonl, .json, .csv, .parquet) or a Hub id, in the public sets'
schemas too: trl-lib/ultrafeedback_binarized keeps whole conversations in ``chosen`` and ``rejected`` (the prompt is
the turns they share), HuggingFaceH4/ultrafeedback_binarized a ``prompt`` string beside whole conversations. Every
pair comes back in one of the two shapes above. A bad pair is named by file, row and field, all at once
(``DataFormatError``): a missing field, chosen equal to rejected, a turn without role or content, and (given
``render``, the template's own check) a prompt the template cannot render.

``pairs_from_rows`` builds pairs offline from the course's chat rows: chosen is the right, concise answer;
rejected is that answer repeated (seed 002's poem "came out repeated") or another prompt's answer (a wrong one).
"""

from __future__ import annotations

import random

from ftlab.data.errors import DataFormatError, Finding
from ftlab.data.loading import _read

FIELDS = ("prompt", "chosen", "rejected")
ROLES = ("system", "user", "assistant")
REJECTED_KINDS = ("repeated", "wrong")


def load_pairs(source, file: str | None = None, split: str = "train", render=None) -> list[dict]:
    """Pairs from ``source`` (a list of dicts, a Dataset or DataFrame, a file, or a Hub id online), checked and in
    one shape: chat or plain. ``render(prompt_turns)`` (``ftlab.round.preference`` passes the template's) must
    not raise for any prompt; ``DataFormatError`` lists every bad pair by file, row and field."""
    read = _read(source, file, split)
    findings = [finding for _, finding in read.problems]
    pairs, shapes = [], {}
    for number, row in read.records:
        pair, problems = normalise(row, number, read.name)
        findings += problems
        if pair is None:
            continue
        shapes.setdefault(shape_of(pair), number)
        if render is not None and isinstance(pair["prompt"], list):
            try:
                render(pair["prompt"])
            except Exception as error:  # noqa: BLE001 - the template's own words go into the finding
                findings.append(Finding(number, "prompt", f"the chat template cannot render this prompt "
                                        f"({type(error).__name__}: {str(error)[:160]}); fix its turns or pick a "
                                        "template that takes them", read.name))
                continue
        pairs.append(pair)
    if len(shapes) > 1:
        findings.append(Finding(shapes["plain"], None, f"plain pair (strings) among chat pairs (row "
                                f"{shapes['chat']} is one): give every pair in one shape", read.name))
    if not read.records:
        findings.append(Finding(None, None, "no pairs: give a list of {prompt, chosen, rejected}", read.name))
    if findings:
        raise DataFormatError(findings)
    return pairs


def shape_of(pair: dict) -> str:
    return "chat" if isinstance(pair["prompt"], list) else "plain"


def normalise(row, number: int, name: str) -> tuple[dict | None, list[Finding]]:
    """One raw row as a pair in one of the two shapes, or None and what is wrong with it."""
    def found(field, message):
        return [Finding(number, field, message, name)]

    if not isinstance(row, dict):
        return None, found(None, f"a pair is a dict with {list(FIELDS)}, not {type(row).__name__}")
    missing = [f for f in ("chosen", "rejected") if row.get(f) in (None, "", [])]
    if missing:
        return None, found(missing[0], f"missing or empty: every pair needs {list(FIELDS)}")
    chosen, rejected, prompt = row["chosen"], row["rejected"], row.get("prompt")
    if isinstance(chosen, str) and isinstance(rejected, str):  # plain
        if not isinstance(prompt, str) or not prompt.strip():
            return None, found("prompt", "missing or empty: a plain pair needs the prompt as text")
        pair = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    else:
        for field in ("chosen", "rejected"):
            problem = turns_problem(row[field])
            if problem:
                return None, found(field, problem)
        if isinstance(prompt, str) and prompt.strip():
            prompt = [{"role": "user", "content": prompt}]
        elif prompt in (None, "", []):  # implicit: the turns chosen and rejected share
            prompt = shared_turns(chosen, rejected)
            if not prompt:
                return None, found("prompt", "missing, and chosen and rejected share no opening turns to take it from")
        elif turns_problem(prompt):
            return None, found("prompt", turns_problem(prompt))
        chosen, rejected = answer_turn(chosen), answer_turn(rejected)
        for field, turn in (("chosen", chosen), ("rejected", rejected)):
            if turn is None:
                return None, found(field, "its last turn must be the assistant's answer")
        if prompt[-1]["role"] != "user":
            return None, found("prompt", f"its last turn is the {prompt[-1]['role']}'s: it must be the user's, "
                                         "which chosen and rejected answer")
        pair = {"prompt": [dict(role=t["role"], content=t["content"]) for t in prompt],
                "chosen": [chosen], "rejected": [rejected]}
    if answer_text(pair["chosen"]).strip() == answer_text(pair["rejected"]).strip():
        return None, found("rejected", "equal to chosen: a pair must hold two different answers to prefer between")
    return pair, []


def turns_problem(turns) -> str | None:
    if not isinstance(turns, list) or not turns:
        return "must be text, or a list of turns {role, content}"
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            return f"turn {i} is not a turn {{role: {'/'.join(ROLES)}, content: text}}: {str(turn)[:80]}"
    return None


def shared_turns(chosen: list, rejected: list) -> list:
    """The opening turns two conversations share (trl-lib's implicit prompt), up to the last user turn."""
    shared = []
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        shared.append(a)
    while shared and shared[-1]["role"] != "user":
        shared.pop()
    return shared


def answer_turn(turns: list) -> dict | None:
    """The assistant's answer in ``turns``: the last turn, whether given alone or after the prompt's turns."""
    last = turns[-1]
    return {"role": "assistant", "content": last["content"]} if last["role"] == "assistant" else None


def answer_text(answer) -> str:
    return answer if isinstance(answer, str) else answer[-1]["content"]


def prompt_text(prompt) -> str:
    """The user's question of a pair's prompt (its last user turn), or the plain prompt."""
    return prompt if isinstance(prompt, str) else next(t["content"] for t in reversed(prompt) if t["role"] == "user")


# ------------------------------------------------------------------------------------------------- offline pairs
def repeated(answer: str, times: int = 3) -> str:
    """Seed 002's failure: the answer again and again."""
    return " ".join([answer.strip()] * times)


def pairs_from_rows(rows, kinds=REJECTED_KINDS, seed: int = 0, plain: bool = False) -> list[dict]:
    """One pair per chat row: chosen = the row's own answer; rejected = that answer repeated (``"repeated"``) or
    another row's answer (``"wrong"``), the kinds taken in turn. ``plain=True`` gives strings, without turns."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in kinds if k not in REJECTED_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds={kinds!r}: choose from {REJECTED_KINDS}")
    rows = list(rows)
    answers = [row["messages"][-1]["content"] for row in rows]
    if "wrong" in kinds and len(set(answers)) < 2:
        raise ValueError("'wrong' answers are taken from other rows: give rows with at least two different answers")
    rng = random.Random(seed)
    pairs = []
    for i, row in enumerate(rows):
        turns, answer = row["messages"][:-1], answers[i]
        if kinds[i % len(kinds)] == "repeated":
            worse = repeated(answer)
        else:
            worse = rng.choice([a for a in answers if a != answer])
        if plain:
            pairs.append({"prompt": prompt_text(turns), "chosen": answer, "rejected": worse})
        else:
            pairs.append({"prompt": [dict(t) for t in turns], "chosen": [{"role": "assistant", "content": answer}],
                          "rejected": [{"role": "assistant", "content": worse}]})
    return pairs
