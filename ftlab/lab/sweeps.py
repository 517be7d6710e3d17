"""Sweeps that rank the knobs: one factor at a time around a baseline, then a small grid over the best values.

Seed 004 found this method by hand (one knob at a time, then combinations) and ranked its knobs
lr > epochs > rank > length > batch > dropout. ``lab.sweep`` does it within a budget of rounds or
minutes, keeps every round (a failed one too) in the lab, and ranks the knobs by effect against the
noise measured by repeating the baseline with other seeds (``NOISE_RULE`` says when an effect is
beyond that noise; at least ``MIN_REPEATS`` repeats, or the noise is unknown and nothing is called beyond it).
A sweep point is one round, so its rule is a prediction interval around the baseline's repeats; ``lab.effect``
weighs two settings that both have repeats (a two-sample t-test). Both take Student's t from one table.
"Best" reads the metric in its direction (``ftlab.lab.directions``): the lowest eval loss, the highest
``exact_match`` or accuracy; a metric ftlab does not know is refused unless ``higher_is_better=`` says which.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass

from ftlab.config import ConfigError, RoundConfig
from ftlab.console.lines import warn
from ftlab.lab.directions import Direction, direction, known
from ftlab.lab.effects import t975  # the lab's one table of Student's t
from ftlab.lab.materials import given_inputs
from ftlab.lab.repeats import metric_value, spread

MIN_REPEATS = 3  # two seeds give one difference: no estimate of the spread to trust
NOISE_RULE = ("a knob's effect is beyond noise when one of its values moves the metric further from the baseline's "
              "mean than a repeat of the baseline lands 95% of the time: t(0.975, n-1) x s x sqrt(1/m + 1/n), "
              "s the standard deviation of the baseline's n >= 3 repeats and m the rounds at that value "
              "(a Student's t prediction interval)")


@dataclass
class SweepPoint:
    """One point of a sweep: the knobs that differ from the baseline, its round (if one ran) and outcome."""

    knobs: dict
    phase: str  # "baseline", "one factor" or "grid"
    round_id: int | None
    status: str
    metric: float | None
    why: str = ""


@dataclass
class SweepResult:
    """All points of a sweep and the knobs ranked by effect; ``ranking()`` is a DataFrame, ``plot()`` bars."""

    baseline: RoundConfig
    metric: str
    points: list[SweepPoint]
    budget_note: str = ""
    higher_is_better: bool | None = None  # needed only for a metric ftlab.lab.directions does not know

    def __post_init__(self):
        self.higher_is_better = self.direction.higher  # the rule's, or refused by name

    @property
    def direction(self) -> Direction:
        return direction(self.metric, self.higher_is_better)

    def baseline_values(self) -> list[float]:
        return [p.metric for p in self.points if p.phase == "baseline" and p.metric is not None]

    def spread(self) -> float | None:
        """The repeat spread: max - min of the baseline's repeats (None with a single baseline round)."""
        values = self.baseline_values()
        return max(values) - min(values) if len(values) > 1 else None

    def noise(self, rounds: int = 1) -> float | None:
        """How far from the baseline's mean the mean of ``rounds`` repeats of it may land by luck alone (95%):
        t(0.975, n-1) x s x sqrt(1/rounds + 1/n). None with fewer than ``MIN_REPEATS`` baseline rounds."""
        values = self.baseline_values()
        if len(values) < MIN_REPEATS:
            return None
        base = spread(values)
        return t975(base.n - 1) * base.sd * math.sqrt(1 / rounds + 1 / base.n)

    def ranking(self):
        """A row per knob tried one at a time: its effect (the largest move of a value's mean metric from the
        baseline's mean; a failed value counts as the worst metric seen), best value (in the metric's direction),
        the noise for that value and whether the effect is beyond it (``NOISE_RULE``; None when the noise is
        unknown)."""
        import pandas as pd

        better = self.direction
        base = self.baseline_values()
        base_mean = spread(base).mean if base else None
        seen = [p.metric for p in self.points if p.metric is not None]
        worst = better.worst(seen) if seen else math.nan
        rows = []
        knobs = dict.fromkeys(k for p in self.points if p.phase == "one factor" for k in p.knobs)
        for knob in knobs:
            by_value, failed = {}, 0
            for p in self.points:
                if p.phase == "one factor" and list(p.knobs) == [knob]:
                    failed += p.metric is None
                    by_value.setdefault(repr(p.knobs[knob]), []).append(worst if p.metric is None else p.metric)
            means = {v: spread(m).mean for v, m in by_value.items()}
            if base_mean is not None:  # the move from the baseline, and the noise for as many rounds as moved it
                value = max(means, key=lambda v: abs(means[v] - base_mean))
                effect, noise = abs(means[value] - base_mean), self.noise(len(by_value[value]))
                means[repr(getattr(self.baseline, knob))] = base_mean
            else:  # no baseline round succeeded: the range of the values tried, with no noise to weigh it
                effect, noise = max(means.values()) - min(means.values()), None
            rows.append({"knob": knob, "effect": effect, "best value": better.best(means, key=means.get),
                         "values tried": len(means), "failed": failed, "noise": noise,
                         "beyond noise": None if noise is None else bool(effect > noise)})
        table = pd.DataFrame(rows, columns=["knob", "effect", "best value", "values tried", "failed", "noise",
                                            "beyond noise"])
        return table.sort_values("effect", ascending=False, ignore_index=True)

    def best(self) -> SweepPoint | None:
        """The point with the best metric: the lowest loss, the highest score."""
        done = [p for p in self.points if p.metric is not None]
        return self.direction.best(done, key=lambda p: p.metric) if done else None

    def conclusion(self) -> str:
        table = self.ranking()
        if table.empty:
            return "No knob was tried one at a time: nothing to rank."
        top, best = table.iloc[0], self.best()
        text = (f"Knobs by effect on {self.metric} ({self.direction.words}): {' > '.join(table['knob'])}. "
                f"{top['knob']} matters most "
                f"({top['effect']:.3f}, best value {top['best value']}). ")
        if self.noise() is None:
            text += (f"The noise is unknown: {len(self.baseline_values())} baseline round(s) succeeded, and it takes "
                     f"at least {MIN_REPEATS} (repeats={MIN_REPEATS}) to tell an effect from luck. ")
        else:
            rows = table.to_dict("records")
            said = {flag: ", ".join(f"{r['knob']} ({r['effect']:.3g} against {r['noise']:.3g})"
                                    for r in rows if r["beyond noise"] == flag) for flag in (True, False)}
            text += (f"Beyond noise: {said[True] or 'none'}. Within noise (may be luck): {said[False] or 'none'}. "
                     f"The rule: {NOISE_RULE}. ")
        if best is not None:
            text += f"Best round: {best.round_id} {best.knobs or '(the baseline)'} with {self.metric} {best.metric:.3f}."
        return text

    def __str__(self) -> str:
        lines = [f"Sweep: {len(self.points)} point(s), {sum(p.round_id is not None for p in self.points)} round(s)"
                 f"{'; ' + self.budget_note if self.budget_note else ''}."]
        for p in self.points:
            shown = f"{p.metric:.3f}" if p.metric is not None else "-"
            lines.append(f"  {p.phase:<10} round {p.round_id or '-':>3} {p.status:<11} {self.metric} {shown:>7} "
                         f"{p.knobs or 'baseline'} {p.why}")
        return "\n".join([*lines, self.conclusion()])

    __repr__ = __str__

    def plot(self, ax=None):
        """Effect per knob as bars, with the noise of one round as a line (effects below it may be luck)."""
        import matplotlib.pyplot as plt

        table = self.ranking()
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        ax.bar(table["knob"], table["effect"], color="C0")
        if (noise := self.noise()) is not None:
            ax.axhline(noise, color="C3", ls="--", label=f"noise: 95% of baseline repeats land within ({noise:.2g})")
            ax.legend()
        ax.set_ylabel(f"effect on {self.metric}")
        ax.set_title("what each knob changes (one factor at a time)")
        ax.grid(alpha=0.3, axis="y")
        return ax


def sweep(lab, baseline: RoundConfig, space: dict, model, tokenizer=None, train=None, eval=None, template=None,
          base_model: str | None = None, budget_rounds: int | None = None, budget_minutes: float | None = None,
          repeats: int = 1, grid_knobs: int = 2, metric: str = "eval_loss", higher_is_better: bool | None = None,
          **train_options) -> SweepResult:
    """One factor at a time around ``baseline``, then a small grid over the best values; every round in ``lab``.

    ``model, tokenizer, train, eval`` (or one ``RoundInputs`` in the model's place) become one
    ``RoundInputs``, read once for every round of the sweep.

    ``space`` maps a knob to the values to try (``{"learning_rate": [5e-4, 5e-3], "lora_dropout": [0.0, 0.1]}``).
    The baseline runs ``repeats`` times (seeds baseline.seed, +1, ...) to measure the noise (at least
    ``MIN_REPEATS``, or the noise stays unknown); each knob's
    values run one at a time; then the ``grid_knobs`` knobs with the largest effect are combined at their
    best values. A round that fails (out of memory, divergence) is recorded in the lab and the sweep goes
    on; a value ``RoundConfig`` refuses is noted without a round. The sweep stops starting rounds once
    ``budget_rounds`` have run or ``budget_minutes`` have passed (a round under way is finished).
    ``metric``: the eval loss, or a score that ``score=`` (passed on to ``lab.train``) returns, such as
    ``exact_match``; "best" follows its direction, and a metric ftlab does not know needs ``higher_is_better``.
    """
    better = direction(metric, higher_is_better)  # an unknown metric is refused before any round trains
    if known(metric) is True and train_options.get("score") is None:  # a score: only score= measures one
        raise ValueError(f"a sweep by {metric!r} needs the score that measures it: score=fn, where "
                         f"fn(model, tokenizer) returns {{{metric!r}: ...}} (lab.train calls it after each round)")
    unknown = [k for k in space if k not in RoundConfig.__dataclass_fields__]
    if unknown:
        raise ValueError(f"unknown knob(s) {unknown}; RoundConfig knobs are {sorted(RoundConfig.__dataclass_fields__)}")
    for knob, values in space.items():
        if isinstance(values, str | bytes | dict) or not isinstance(values, list | tuple | range):
            raise ValueError(f"space[{knob!r}] = {values!r}: give a list of values to try, e.g. "
                             f"{{{knob!r}: [{getattr(baseline, knob)!r}, ...]}}")
        if not values:
            raise ValueError(f"space[{knob!r}] = {values!r}: no values to try; give the values to compare with the "
                             f"baseline's {getattr(baseline, knob)!r}, or leave the knob out")
        if all(v == getattr(baseline, knob) for v in values):
            warn(f"space[{knob!r}] = {list(values)!r} holds only the baseline's value: no round tries another "
                 f"{knob}", stacklevel=3)
    inputs = given_inputs(model, tokenizer, train, eval, template, base_model)  # the rows read once, for all rounds
    if inputs.eval is None and metric == "eval_loss":
        raise ValueError("a sweep ranks knobs by eval loss: pass eval= rows (or metric='train_loss')")
    started, points, note = time.monotonic(), [], ""

    def out_of_budget() -> bool:
        nonlocal note
        ran = sum(p.round_id is not None for p in points)
        if budget_rounds is not None and ran >= budget_rounds:
            note = f"stopped at the budget of {budget_rounds} round(s)"
        elif budget_minutes is not None and time.monotonic() - started >= 60 * budget_minutes:
            note = f"stopped at the budget of {budget_minutes:g} minute(s)"
        return bool(note)

    def run(knobs: dict, phase: str, seed_offset: int = 0) -> None:
        try:
            config = dataclasses.replace(baseline, **knobs, seed=baseline.seed + seed_offset)
        except ConfigError as error:
            points.append(SweepPoint(knobs, phase, None, "refused", None, str(error).splitlines()[0]))
            return
        name = "sweep " + (", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in knobs.items()) or "baseline")
        round_ = lab.train(config, inputs, name=name, **train_options)
        value = metric_value(round_, metric)  # measured and finite, or None
        if round_.status == "succeeded" and metric not in round_.metrics:
            raise ValueError(f"round {round_.id} succeeded but recorded no {metric!r}; it recorded "
                             f"{', '.join(round_.metrics)}. Sweep by one of those, or pass score= returning {metric!r}")
        why = "" if round_.status == "succeeded" else (round_.record.get("failure") or {}).get("kind", "")
        points.append(SweepPoint(knobs, phase, round_.id, round_.status, value, why))

    for k in range(max(1, repeats)):
        if not out_of_budget():
            run({}, "baseline", k)
    for knob, values in space.items():
        for value in values:
            if value != getattr(baseline, knob) and not out_of_budget():
                run({knob: value}, "one factor")
    partial = SweepResult(baseline, metric, points, higher_is_better=better.higher)
    table = partial.ranking()
    base = partial.baseline_values()
    base_mean = spread(base).mean if base else None
    winners = {}  # knob -> its best value, for knobs whose best beats the baseline
    for row in table.head(grid_knobs).itertuples():
        done = [p for p in points if p.phase == "one factor" and list(p.knobs) == [row.knob] and p.metric is not None]
        if not done:
            continue
        best = better.best(done, key=lambda p: p.metric)
        if base_mean is None or better.beats(best.metric, base_mean):
            winners[row.knob] = best.knobs[row.knob]
    if len(winners) > 1:
        choices = [[getattr(baseline, k), v] for k, v in winners.items()]
        for combo in itertools.product(*choices):
            knobs = {k: v for k, v in zip(winners, combo, strict=True) if v != getattr(baseline, k)}
            if len(knobs) > 1 and not out_of_budget():
                run(knobs, "grid")
    result = SweepResult(baseline, metric, points, note, better.higher)
    if not train_options.get("quiet"):  # a quiet sweep leaves the result to its caller: result.ranking(), print(result)
        print(result)
    return result
