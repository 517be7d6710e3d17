"""What every exercise check shares: the failure that shows as its message alone, and the wording helpers."""

from __future__ import annotations


class CheckFailed(AssertionError):
    """An exercise answer is not right yet; the message says what is wrong and which idea to revisit.

    IPython (Jupyter, Colab, Kaggle) shows an exception that has ``_render_traceback_`` as the lines
    that method returns, so the learner reads the message, not a traceback through ftlab's source
    that ends in it. It stays an ``AssertionError``: nbmake and pytest still count the cell as failed,
    and plain Python still prints the full traceback.
    """

    def _render_traceback_(self) -> list[str]:
        lines = str(self).splitlines() or ["the check failed"]
        return [f"\x1b[31m✗ {lines[0]}\x1b[0m", *lines[1:]]


def fail(name: str, got, expected: str, hint: str = "") -> None:
    message = f"{name} is {got!r}, but {expected}."
    if got is None:
        message = f"{name} is still None: fill in the TODO cell above. Expected: {expected}."
    raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))


def passed(message: str) -> bool:
    print(f"✓ {message}")
    return True


def mistake(message: str, revisit: str) -> None:
    """Fail with what is wrong and the idea to revisit (never the expected value)."""
    raise CheckFailed(f"{message}\nRevisit: {revisit}.")


def still_none(name: str, value) -> None:
    if value is None:
        raise CheckFailed(f"{name} is still None: fill in the TODO cell above.")


def close_to(a: float, b: float, tolerance: float = 1e-6) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(b))
