"""Recognise the shape of an instruction row and turn it into ftlab's canonical chat row.

Public data sets come in four shapes that matter for fine-tuning, and learners mix them up:

* **Alpaca**: ``{"instruction", "input" (optional, may be empty), "output"}``
* **prompt/completion**: ``{"prompt", "completion"}`` (strings, or lists of turns as TRL allows)
* **chat**: ``{"messages": [{"role": "user" | "assistant" | "system", "content": ...}, ...]}``
* **ShareGPT**: ``{"conversations": [{"from": "human" | "gpt" | "system", "value": ...}, ...]}``

ftlab trains on one shape only, the chat: ``{"messages": [user, assistant]}`` (a system turn may
come first; extra columns such as ``category`` ride along). ``to_chat`` checks a row and converts it
in the same pass, returning the problems it found instead of raising, so a loader can report every
bad row of a file at once. ``chat_row`` / ``chat_turns`` build that shape (the course's sets, the
converters here), and ``prompt_turns`` a prompt's turns (a string is one user turn). The helpers at the bottom give the normalised prompt or conversation text
that de-duplication, splitting and leakage checks compare.
"""

from __future__ import annotations

import json
from typing import Any

FORMAT_NAMES = {"alpaca": "Alpaca", "prompt_completion": "prompt/completion", "chat": "chat (messages)",
                "sharegpt": "ShareGPT"}
FORMAT_FIELDS = {"alpaca": ("instruction", "input", "output"), "prompt_completion": ("prompt", "completion"),
                 "chat": ("messages",), "sharegpt": ("conversations",)}
# A pre-formatted copy of the whole example (tatsu-lab/alpaca ships one): the messages replace it, and
# keeping it would hand TRL two different versions of the same row.
DROPPED_FIELDS = ("text",)
ROLES = ("system", "user", "assistant")
CHAT_ROLES = {role: role for role in ROLES}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "chatgpt": "assistant"}
# Column names learners often use, and the name ftlab's formats expect instead (used only in hints).
FIELD_HINTS = {"question": "instruction", "query": "instruction", "prompt_text": "prompt",
               "answer": "output", "response": "output", "target": "output", "context": "input",
               "conversation": "conversations", "dialogue": "messages", "dialog": "messages",
               "chat": "messages"}

# The columns a format consumes; every other column rides along into the chat row.


def chat_turns(*exchanges: tuple[str, str], system: str | None = None) -> list[dict]:
    """The turns of ``(question, answer)`` exchanges in order, after a system turn when ``system`` is given."""
    turns = [{"role": "system", "content": system}] if system is not None else []
    for question, answer in exchanges:
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return turns


def chat_row(*exchanges: tuple[str, str], system: str | None = None, **columns) -> dict:
    """ftlab's canonical chat row: ``{"messages": chat_turns(...)}`` and extra ``columns`` (``category``, ``task``)."""
    return {"messages": chat_turns(*exchanges, system=system), **columns}


def prompt_turns(prompt) -> list[dict]:
    """A prompt as chat turns: a string is one user turn; a list of turns is copied as it is."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


_OWN_FIELDS = {fmt: frozenset(fields) | frozenset(DROPPED_FIELDS) for fmt, fields in FORMAT_FIELDS.items()}
_FORMAT_OF = {name: fmt for fmt, fields in FORMAT_FIELDS.items() for name in fields}
_ALL_FIELDS = frozenset(_FORMAT_OF)
Problem = tuple[str, str | None, str]  # (kind of problem, field at fault, what is wrong and how to fix it)


def detect_format(row: dict) -> str | None:
    """The format of one row (a key of ``FORMAT_NAMES``), or None when no known field is present."""
    if "messages" in row:
        return "chat"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row or "output" in row:
        return "alpaca"
    if "prompt" in row or "completion" in row:
        return "prompt_completion"
    return None


def unknown_fields_message(row: dict) -> str:
    """Why a row matches no format, with a renaming hint when a column name gives the intent away."""
    keys = sorted(map(str, row))
    hints = [f"{k!r} -> {FIELD_HINTS[k.lower()]!r}" for k in keys if k.lower() in FIELD_HINTS]
    if "text" in row and not hints:
        return ("a plain 'text' row has no roles, so ftlab cannot tell prompt from answer; "
                "give it 'instruction' and 'output' (or 'prompt' and 'completion') fields")
    shapes = "; ".join(f"{FORMAT_NAMES[f]}: {', '.join(FORMAT_FIELDS[f])}" for f in FORMAT_FIELDS)
    rename = f" Rename {', '.join(hints)}." if hints else ""
    return f"no known fields (found {keys}); a row needs the fields of one format ({shapes}).{rename}"


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _type_problem(field: str, value: Any) -> Problem:
    if value is None:
        return ("missing field", field, "has no value (null / empty cell); give it a string")
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return ("not a string", field, f"must be a string, got {type(value).__name__} {shown}; "
                                   f"write it as text, e.g. \"{value}\"")


def _parse_json_list(value: Any) -> Any:
    # A CSV cell can only hold text: accept a JSON list written into it.
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _turns(turns: Any, field: str, role_key: str, content_key: str,
           roles: dict[str, str]) -> tuple[list[dict], list[Problem]]:
    """Check a list of turns and return them as ``{"role", "content"}`` dicts."""
    turns = _parse_json_list(turns)
    example = f"{{{role_key!r}: ..., {content_key!r}: ...}}"
    if not isinstance(turns, list) or not turns:
        got = "an empty list" if isinstance(turns, list) else type(turns).__name__
        return [], [("bad conversation", field, f"must be a non-empty list of {example} turns, got {got}")]
    out, problems = [], []
    for i, turn in enumerate(turns):
        where = f"{field}[{i}]"
        if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
            found = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
            problems.append(("bad turn", where, f"each turn needs the keys {role_key!r} and {content_key!r} "
                                                f"(found {found})"))
            continue
        role, content = turn[role_key], turn[content_key]
        if role not in roles:
            valid = ", ".join(repr(r) for r in roles)
            problems.append(("unknown role", f"{where}.{role_key}", f"turn {i + 1} has the unknown role {role!r}; "
                                                                    f"use one of {valid}"))
            continue
        if not _is_str(content):
            kind, _, message = _type_problem(f"{where}.{content_key}", content)
            problems.append((kind, f"{where}.{content_key}", message))
            continue
        if not content.strip() and roles[role] != "system":
            kind = "empty answer" if roles[role] == "assistant" else "empty prompt"
            problems.append((kind, f"{where}.{content_key}", f"turn {i + 1}, the {roles[role]}'s, is empty; "
                                                              "write it or drop the turn"))
        out.append({"role": roles[role], "content": content})
    return out, problems or _order(out, field)


def _order(messages: list[dict], field: str) -> list[Problem]:
    """Two answers in a row have no question between them: every template writes them as one context the
    model never sees at inference (and some templates refuse them)."""
    return [("two assistant turns in a row", f"{field}[{i}]",
             f"turns {i} and {i + 1} are both the assistant's, with no user turn between them; merge the two "
             "answers into one turn, or put back the user's turn that came between them")
            for i in range(1, len(messages)) if messages[i]["role"] == messages[i - 1]["role"] == "assistant"]


def _ending(messages: list[dict], field: str) -> list[Problem]:
    """A trainable conversation has a user turn and ends with the assistant's answer."""
    if messages[-1]["role"] != "assistant":
        return [("last turn not assistant", field,
                 f"the conversation ends with a {messages[-1]['role']} turn; the last turn must be the "
                 "assistant's answer (it is what the model learns): add the answer or drop the turn")]
    if not any(t["role"] == "user" for t in messages):
        return [("missing field", field, "the conversation has no user turn: there is nothing to answer")]
    return []


def _alpaca(row: dict) -> tuple[list[dict], list[Problem]]:
    problems: list[Problem] = []
    for key, what in (("instruction", "the task"), ("output", "the answer the model learns")):
        if key not in row:
            problems.append(("missing field", key, f"Alpaca rows need {key!r} ({what}); "
                                                   f"this row has {sorted(map(str, row))}"))
        elif not _is_str(row[key]):
            problems.append(_type_problem(key, row[key]))
    extra = row.get("input")
    if extra is not None and not _is_str(extra):
        problems.append(_type_problem("input", extra))
    if problems:
        return [], problems
    if not row["instruction"].strip():
        problems.append(("empty prompt", "instruction", "the instruction is empty; write it or drop the row"))
    if not row["output"].strip():
        problems.append(("empty answer", "output", "the output is empty: there is nothing to learn; "
                                                   "write the answer or drop the row"))
    user = row["instruction"] + (f"\n\n{extra}" if extra and extra.strip() else "")
    return chat_turns((user, row["output"])), problems


def _prompt_completion(row: dict) -> tuple[list[dict], list[Problem]]:
    problems: list[Problem] = []
    for key in ("prompt", "completion"):
        if key not in row:
            problems.append(("missing field", key, f"prompt/completion rows need both 'prompt' and "
                                                   f"'completion'; this row has {sorted(map(str, row))}"))
    if problems:
        return [], problems
    prompt, completion = _parse_json_list(row["prompt"]), _parse_json_list(row["completion"])
    if isinstance(prompt, list) and isinstance(completion, list):  # TRL's conversational prompt/completion
        before, problems = _turns(prompt, "prompt", "role", "content", CHAT_ROLES)
        after, more = _turns(completion, "completion", "role", "content", CHAT_ROLES)
        problems += more
        return before + after, problems or _ending(before + after, "completion")
    problems += [_type_problem(k, v) for k, v in (("prompt", prompt), ("completion", completion)) if not _is_str(v)]
    if problems:
        return [], problems
    if not prompt.strip():
        problems.append(("empty prompt", "prompt", "the prompt is empty; write it or drop the row"))
    if not completion.strip():
        problems.append(("empty answer", "completion", "the completion is empty: there is nothing to learn"))
    return chat_turns((prompt, completion)), problems


def to_chat(row: dict, fmt: str) -> tuple[dict | None, list[Problem]]:
    """Check ``row`` (in format ``fmt``) and convert it: ``(chat row or None, problems)``.

    The chat row is ``{"messages": [...]}`` plus every column that is not part of the format (such as
    ``category``), kept as it is. Alpaca's user turn is the instruction, then a blank line and the
    input when there is one; its assistant turn is the output.
    """
    if fmt == "alpaca":
        messages, problems = _alpaca(row)
    elif fmt == "prompt_completion":
        messages, problems = _prompt_completion(row)
    elif fmt == "chat":
        messages, problems = _turns(row["messages"], "messages", "role", "content", CHAT_ROLES)
        problems = problems or _ending(messages, "messages")
    elif fmt == "sharegpt":
        messages, problems = _turns(row["conversations"], "conversations", "from", "value", SHAREGPT_ROLES)
        problems = problems or _ending(messages, "conversations")
    else:
        raise ValueError(f"unknown format {fmt!r}; choose from {sorted(FORMAT_NAMES)}")
    if problems:
        return None, problems
    own = _OWN_FIELDS[fmt]
    extra = {k: v for k, v in row.items() if k not in own}
    clash = sorted(set(extra) & _ALL_FIELDS)
    if clash:  # TRL decides a row's format by its columns: a stray 'prompt' would change how it trains
        others = ", ".join(f"{k!r} ({FORMAT_NAMES[_FORMAT_OF[k]]})" for k in clash)
        return None, [("mixed fields", clash[0], f"the row is {FORMAT_NAMES[fmt]} but also has {others}; "
                                                 "keep the fields of one format only")]
    return {"messages": messages, **extra}, []


# --- the text that dedup, split and leakage compare ----------------------------------------------

def normalise(text: str) -> str:
    """Case-folded, with runs of whitespace collapsed: "Hello  World\\n" and "hello world" compare equal."""
    return " ".join(text.casefold().split())


def _last_answer(messages: list[dict]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return i
    return len(messages)


def prompt_text(row: dict) -> str:
    """Everything before the last assistant turn (system and user turns), normalised."""
    messages = row["messages"]
    return normalise("\n".join(f"{m['role']}: {m['content']}" for m in messages[:_last_answer(messages)]))


def conversation_text(row: dict) -> str:
    """The whole conversation, prompt and answer, normalised."""
    return normalise("\n".join(f"{m['role']}: {m['content']}" for m in row["messages"]))
