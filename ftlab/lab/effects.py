"""Is a change beyond noise? The effect of one knob, measured against the spread of repeated rounds.

Seed 000 cloned a round to rule out luck. One clone is not enough: the spread of two values is itself
a guess. ``effect`` takes the repeats of a baseline round and of a changed round (``lab.rerun`` makes
them; at least three of each), names the knob that differs, and compares the difference of the means
with its standard error (Student's two-sample t-test, pooled variance): the change is *beyond noise*
when the ratio exceeds the 95% critical value for that many repeats (4.30 for 2 + 2 rounds, 2.78 for
3 + 3, 2.31 for 5 + 5). Lower is better for losses and perplexity, higher for scores (``ftlab.lab.directions``;
another metric must be declared with ``higher_is_better=``). Rounds that ran on other versions of transformers,
TRL, PEFT, torch or bitsandbytes are refused: a library can move a loss more than a knob.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ftlab.lab.directions import direction
from ftlab.lab.repeats import metric_value, repeats_of, spread, values
from ftlab.lab.round import Round
from ftlab.lab.table import differences, version_changes

# Two-sided 95% critical values of Student's t, by degrees of freedom (repeats of both rounds minus 2).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def t975(df: int) -> float:
    """Student's t, two-sided 95% (the 0.975 quantile), for ``df`` degrees of freedom (the table's row at or below)."""
    return T95[max(k for k in T95 if k <= df)]


@dataclass(frozen=True)
class Effect:
    """The change of ``metric`` from the baseline's repeats to the changed round's repeats."""

    knob: str  # what differs, e.g. "learning_rate 0.001 -> 0.0002"
    metric: str
    baseline: tuple[float, ...]
    changed: tuple[float, ...]
    higher_is_better: bool | None = None  # needed only for a metric ftlab.lab.directions does not know

    def __post_init__(self):
        object.__setattr__(self, "higher_is_better", direction(self.metric, self.higher_is_better).higher)
        if min(len(self.baseline), len(self.changed)) < 2:
            raise ValueError(f"an effect needs a spread on both sides: {len(self.baseline)} baseline and "
                             f"{len(self.changed)} changed value(s) given, at least 2 (better 3) of each")

    @property
    def difference(self) -> float:
        return spread(self.changed).mean - spread(self.baseline).mean

    @property
    def standard_error(self) -> float:
        """Standard error of the difference of the means, from the pooled spread of both sets of repeats."""
        a, b = spread(self.baseline), spread(self.changed)
        pooled = math.sqrt(((a.n - 1) * a.sd ** 2 + (b.n - 1) * b.sd ** 2) / (a.n + b.n - 2))
        return pooled * math.sqrt(1 / a.n + 1 / b.n)

    @property
    def ratio(self) -> float:
        """|difference| / standard error (Student's t); infinite when the repeats did not vary at all."""
        se = self.standard_error
        return abs(self.difference) / se if se > 0 else (math.inf if self.difference else 0.0)

    @property
    def needed(self) -> float:
        return t975(len(self.baseline) + len(self.changed) - 2)

    @property
    def beyond_noise(self) -> bool:
        return self.ratio > self.needed

    @property
    def better(self) -> bool:
        """Whether the change moved the metric its better way (up for a score, down for a loss)."""
        return direction(self.metric, self.higher_is_better).beats(spread(self.changed).mean,
                                                                    spread(self.baseline).mean)

    def __str__(self) -> str:
        name = self.metric.replace("_", " ")
        verdict = (f"beyond noise: {'better' if self.better else 'worse'}" if self.beyond_noise else
                   "within noise: no conclusion, repeat more or change the knob further")
        return (f"{self.knob}: {name} {spread(self.baseline)} -> {spread(self.changed)}, a change of "
                f"{self.difference:+.3g}, {self.ratio:.3g} times its standard error {self.standard_error:.2g} "
                f"(95% needs {self.needed:.3g}): {verdict}.")


def effect(rounds: list[Round], baseline: Round, changed: Round, metric: str = "eval_loss",
           min_repeats: int = 3, higher_is_better: bool | None = None) -> Effect:
    """The effect of what ``changed`` changed from ``baseline``, over the repeats of each (see the module)."""
    direction(metric, higher_is_better)  # an unknown metric is refused before anything is read
    members = [r for r in repeats_of(rounds, baseline) + repeats_of(rounds, changed)
               if metric_value(r, metric) is not None]  # the rounds whose values the effect would weigh
    apart = sorted({c for r in members for c in version_changes(baseline, r)})
    if apart:
        raise ValueError(f"rounds {', '.join(str(r.id) for r in members)} did not all run on the same library "
                         f"versions ({', '.join(apart)}, against round {baseline.id}): a library alone can move a "
                         "loss more than a knob, so no difference across them is called beyond noise. Rerun both "
                         "rounds' repeats on one install (lab.rerun) and compare those.")
    knobs = [k for k in differences(baseline, changed) if k not in ("seed", "versions")]
    if not knobs:
        raise ValueError(f"rounds {baseline.id} and {changed.id} differ only in their seed: they are repeats of one "
                         "round, not a change")
    found = {}
    for role, round_ in (("baseline", baseline), ("changed", changed)):
        found[role] = values(repeats_of(rounds, round_), metric)
        if len(found[role]) < min_repeats:
            raise ValueError(f"round {round_.id} ({round_.name or role}) has {len(found[role])} successful repeat(s) "
                             f"with {metric!r}; a spread needs at least {min_repeats}: lab.rerun({round_.id}) "
                             f"{min_repeats - len(found[role])} more time(s)")
    a, b = baseline.record["config"], changed.record["config"]
    knob = ", ".join(f"{k} {a.get(k)} -> {b.get(k)}" if k in a else k for k in knobs)
    return Effect(knob, metric, tuple(found["baseline"]), tuple(found["changed"]), higher_is_better)
