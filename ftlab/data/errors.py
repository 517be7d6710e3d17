"""What a bad dataset row looks like to a learner: one Finding per problem, all raised together.

A problem in the data must never surface as a ``KeyError: 'text'`` deep inside a trainer. Every
check in ftlab reports a ``Finding`` naming the file, the row (1-based, as an editor shows it), the
field, what is wrong and how to fix it; strict loading raises one ``DataFormatError`` holding all
of them, so the learner fixes the file in one pass instead of one crash at a time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One problem in one row of a dataset."""

    row: int | None  # 1-based row (line in a JSONL file, data row in a CSV), None for the whole set
    field: str | None  # the field (column / key) at fault, None when the row itself is at fault
    message: str  # what is wrong, and how to fix it
    file: str | None = None  # the file the row came from, when there is one

    def __str__(self) -> str:
        where = [self.file or "data"]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}"


class DataFormatError(ValueError):
    """Raised when a dataset has rows ftlab cannot train on. ``.findings`` lists every problem."""

    def __init__(self, findings: list[Finding], limit: int = 20):
        self.findings = list(findings)
        shown = "\n".join(f"  - {f}" for f in self.findings[:limit])
        more = len(self.findings) - limit
        tail = f"\n  ... and {more} more (see .findings)" if more > 0 else ""
        super().__init__(f"{len(self.findings)} problem(s) in the data:\n{shown}{tail}")
