"""The row shapes ``train_round`` accepts, checked before anything is trained.

ftlab trains on three shapes that TRL understands: a chat (``messages``: role/content turns ending
with the assistant), a prompt/completion pair, or plain ``text``. ``check_rows`` looks at every row
and reports each problem with its row number; ``to_dataset`` turns a list (or DataFrame) into a
``datasets.Dataset`` after that check, so a bad row fails here, never inside the trainer.
"""

from __future__ import annotations

from typing import Any

from ftlab.data.errors import DataFormatError, Finding

ROLES = ("system", "user", "assistant")
SHAPES = ("messages", "prompt/completion", "text")


def _check_messages(turns: Any, row: int) -> list[Finding]:
    if not isinstance(turns, list) or not turns:
        return [Finding(row, "messages", "must be a non-empty list of {'role': ..., 'content': ...} turns")]
    found = []
    for i, turn in enumerate(turns):
        field = f"messages[{i}]"
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            found.append(Finding(row, field, "each turn needs the keys 'role' and 'content'"))
        elif turn["role"] not in ROLES:
            found.append(Finding(row, f"{field}.role", f"unknown role {turn['role']!r}; use one of {ROLES}"))
        elif not isinstance(turn["content"], str):
            found.append(Finding(row, f"{field}.content", f"must be a string, got {type(turn['content']).__name__}"))
    if not found and turns[-1]["role"] != "assistant":
        found.append(Finding(row, "messages", "the last turn must be the assistant's: it is what the model learns"))
    if not found and not turns[-1]["content"].strip():
        found.append(Finding(row, f"messages[{len(turns) - 1}].content", "the assistant's answer is empty"))
    return found


def _check_row(row: Any, number: int) -> list[Finding]:
    if not isinstance(row, dict):
        return [Finding(number, None, f"a row must be a dict, got {type(row).__name__}")]
    if "messages" in row:
        return _check_messages(row["messages"], number)
    if "prompt" in row or "completion" in row:
        found = [Finding(number, key, f"needs the key {key!r} (prompt/completion rows need both)")
                 for key in ("prompt", "completion") if key not in row]
        found += [Finding(number, key, f"must be a string, got {type(row[key]).__name__}")
                  for key in ("prompt", "completion") if key in row and not isinstance(row[key], str)]
        if not found and not row["completion"].strip():
            found.append(Finding(number, "completion", "the completion is empty: nothing to learn"))
        return found
    if "text" in row:
        ok = isinstance(row["text"], str) and row["text"].strip()
        return [] if ok else [Finding(number, "text", "must be a non-empty string")]
    return [Finding(number, None, f"no known fields (found {sorted(row)}); a row needs one shape of {SHAPES}. "
                                  "Alpaca-style rows? Convert them with ftlab.data first.")]


def check_rows(rows, file: str | None = None, limit: int = 1000) -> list[Finding]:
    """Every problem in ``rows`` (up to ``limit``), each naming its 1-based row and field."""
    findings: list[Finding] = []
    shapes = set()
    for number, row in enumerate(rows, start=1):
        problems = _check_row(row, number)
        findings += [Finding(f.row, f.field, f.message, file) for f in problems]
        if not problems:
            shapes.add("messages" if "messages" in row else "prompt/completion" if "prompt" in row else "text")
        if len(findings) >= limit:
            break
    if len(shapes) > 1:
        findings.append(Finding(None, None, f"rows mix shapes {sorted(shapes)}; use one shape for a whole set", file))
    return findings


def to_dataset(rows, name: str = "data"):
    """A ``datasets.Dataset`` from a list of dicts, a DataFrame or a Dataset, checked row by row."""
    from datasets import Dataset

    if rows is None:
        return None
    if hasattr(rows, "to_dict") and hasattr(rows, "columns") and not isinstance(rows, Dataset):
        rows = rows.to_dict("records")  # a pandas DataFrame
    findings = check_rows(rows, file=name)
    if findings:
        raise DataFormatError(findings)
    return rows if isinstance(rows, Dataset) else Dataset.from_list(list(rows))
