"""The repeats of a round and their spread: one grouping, one mean and standard deviation.

``lab.rerun`` trains a round again with another seed and records the round it repeats
(``repeat_of``, always the first of the group). The table's "over repeats" column, ``lab.effect``,
``lab.rerun``'s next seed and exercise 04's check all read a round's repeats through ``repeats_of``
and ``groups``; the table, ``lab.effect`` and ``lab.sweep`` all summarise values through ``spread``
(the mean and the sample standard deviation, n - 1, as ``statistics.mean`` / ``statistics.stdev``).
A round's metric is read by name through ``metric_value``, a loss and a score (``exact_match``) alike, from
every round whose metrics were measured to the end (``MEASURED``: succeeded, or collapsed: an accuracy
collapse is a real outcome of its seed). ``reference_scores`` is what an accuracy collapse is judged against.
Nothing here imports torch or pandas.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

MEASURED = ("succeeded", "collapsed")  # the statuses of rounds that trained to the end and were measured


@dataclass(frozen=True)
class Spread:
    """The mean and sample standard deviation of ``n`` values (``sd`` None for a single value).

    The numbers stay unrounded; ``str`` shows them as the table does: ``0.6943 ± 0.014 (n=3)``.
    """

    mean: float
    sd: float | None
    n: int

    def __str__(self) -> str:
        if self.sd is None:
            return f"{self.mean:.4g} (n={self.n})"
        return f"{self.mean:.4g} ± {self.sd:.2g} (n={self.n})"


def spread(values) -> Spread:
    """Mean and sample standard deviation (divided by n - 1) of ``values``; the sd is None for one value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to take a mean of: at least one round must have succeeded with this metric")
    return Spread(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


def repeat_group(round_) -> int:
    """The id that names a round's group of repeats: the round it repeats, or its own id if it repeats none."""
    return round_.record.get("repeat_of") or round_.id


def groups(rounds) -> dict[int, list]:
    """The rounds by group of repeats, in their order: ``{first id: [the first round, its repeats...]}``."""
    found: dict[int, list] = {}
    for r in rounds:
        found.setdefault(repeat_group(r), []).append(r)
    return found


def repeats_of(rounds, of) -> list:
    """The rounds among ``rounds`` in ``of``'s group of repeats (``of`` itself included, any status)."""
    group = repeat_group(of)
    return [r for r in rounds if repeat_group(r) == group]


def metric_value(round_, metric: str) -> float | None:
    """``metric`` of a round (a loss, or a score such as ``exact_match``) when it was measured and is finite."""
    if round_.status not in MEASURED:
        return None
    value = round_.metrics.get(metric)
    # a non-finite float is recorded as the text "nan" / "inf", which is not a number here either
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def values(rounds, metric: str) -> list[float]:
    """The finite ``metric`` of each measured round in ``rounds``, in order (the others are left out)."""
    return [v for r in rounds if (v := metric_value(r, metric)) is not None]


def reference_scores(rounds, round_) -> dict[str, float]:
    """Each score's median over the other succeeded rounds evaluated on ``round_``'s eval rows (same
    fingerprint): what ``ftlab.lab.failures.collapse`` judges a fall against. Empty without such rounds."""
    eval_rows = (round_.record.get("data") or {}).get("eval", {}).get("fingerprint")
    found: dict[str, list[float]] = {}
    for other in rounds:
        same = (other.record.get("data") or {}).get("eval", {}).get("fingerprint") == eval_rows
        if other.id != round_.id and same and eval_rows and other.status == "succeeded":
            for name in other.scores:
                if (value := metric_value(other, name)) is not None:
                    found.setdefault(name, []).append(value)
    return {name: statistics.median(kept) for name, kept in found.items()}
