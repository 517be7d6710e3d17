"""Checks of exercise 05 (read the learning-rate finder, confirm it, follow the lab's advice)."""

from __future__ import annotations

import math

from ftlab.course.checks.base import CheckFailed, mistake, passed, still_none
from ftlab.lab.failures import COLLAPSE

BROKE = ("diverged", "collapsed")  # the lab stopped the round, or a score fell while its loss stayed finite


def _lr_range(finding) -> tuple[float, float]:
    return finding.lrs[0], finding.lrs[-1]


def check_lr_reading(finding, good_lr, too_high_lr) -> bool:
    """Exercise 05: a learning rate that trains well and one where training diverges, read off ``finding``."""
    if good_lr is None or too_high_lr is None:
        raise CheckFailed("good_lr or too_high_lr is still None: fill in the TODO cell above.")
    low, high = _lr_range(finding)
    for name, value in (("good_lr", good_lr), ("too_high_lr", too_high_lr)):
        if not isinstance(value, int | float) or not low <= value <= high:
            raise CheckFailed(f"{name} should be a learning rate inside the range the test tried ({low:.0e} to "
                              f"{high:.0e}); read it off the x axis of finding.plot().")
    bottom = finding.lrs[min(range(len(finding.smoothed)), key=finding.smoothed.__getitem__)]
    # graded as a whole: one verdict for the pair, never which reading is off or in which direction
    if not (bottom / 1000 <= good_lr < bottom and too_high_lr >= bottom / 2):
        raise CheckFailed("the two readings do not both match the curve.\nHint: revisit how a range test is read: a "
                          "good rate sits where the smoothed loss falls fastest, past the flat start and before its "
                          "lowest point; divergence begins after the lowest point, where the curve turns upward.")
    return passed("both learning rates read off the curve; now confirm them with two rounds")


def check_lr_rounds(lab, good_lr, too_high_lr) -> bool:
    """Exercise 05: rounds named "good" and "too high" in ``lab`` at those learning rates confirm the reading."""
    rounds = {r.name: r for r in lab.rounds()}
    for name, lr in (("good", good_lr), ("too high", too_high_lr)):
        if name not in rounds:
            raise CheckFailed(f"the lab has no round named {name!r}: train it with lab.train(..., name={name!r}).")
        if not math.isclose(rounds[name].config.learning_rate, lr, rel_tol=1e-3):
            raise CheckFailed(f"round {name!r} did not train at the learning rate you predicted for it; set "
                              f"learning_rate in its RoundConfig to that value.")
    good, bad = rounds["good"], rounds["too high"]
    if good.status != "succeeded":
        raise CheckFailed(f"round 'good' is {good.status}: {good.verdict()}\nHint: revisit the left part of the "
                          "curve: a good lr sits well before the loss turns upward.")
    before, after = good.metrics.get("eval_loss_before"), good.metrics.get("eval_loss")
    if before is None or after is None:
        raise CheckFailed("round 'good' has no eval loss: pass the evaluation rows to lab.train.")
    if after > 0.8 * before:
        raise CheckFailed("round 'good' barely learned (its eval loss fell less than 20%).\nHint: revisit where "
                          "the range test's loss falls fastest; a step much smaller than that hardly moves.")
    worse = bad.status in (*BROKE, "failed") or (bad.metrics.get("eval_loss") or 0) > after + 0.3 * (before - after)
    if not worse:
        raise CheckFailed("round 'too high' learned about as well as 'good': it did not diverge.\nHint: revisit "
                          "where the smoothed loss climbs back in the range test, and predict higher.")
    return passed("the prediction holds: 'good' learned, 'too high' " +
                  (bad.status if bad.status in BROKE else "learned clearly worse"))


def advised_bound(round_) -> float:
    """The highest learning rate the lab's advice for a broken round allows: ten times lower after a divergence,
    three times lower after an accuracy collapse (``ftlab.lab.failures``)."""
    kind = (round_.failure or {}).get("kind")
    return round_.config.learning_rate / (3 if kind == COLLAPSE else 10) * (1 + 1e-9)


def latest(lab, name: str):
    """The newest round named ``name`` (a learner may train it again after a first try), or None."""
    named = [r for r in lab.rounds() if r.name == name]
    return max(named, key=lambda r: r.id) if named else None


def learned(round_) -> bool:
    """Succeeded (no divergence, no collapse) and its eval loss fell by at least a fifth."""
    before, after = round_.metrics.get("eval_loss_before"), round_.metrics.get("eval_loss")
    return round_.status == "succeeded" and before is not None and after is not None and after <= 0.8 * before


def check_lr_advice(lab, diverging_lr, advised_lr) -> bool:
    """Exercise 05: a round named "diverges" that the lab recorded as broken (diverged, or an accuracy collapse),
    and a round named "advised" at a learning rate its advice allows, which learns."""
    still_none("diverging_lr", diverging_lr)
    still_none("advised_lr", advised_lr)

    def trained(name: str, lr):
        round_ = latest(lab, name)
        if round_ is None:
            raise CheckFailed(f"the lab has no round named {name!r}: train it with lab.train(..., name={name!r}).")
        if not isinstance(lr, int | float) or not math.isclose(round_.config.learning_rate, lr, rel_tol=1e-3):
            raise CheckFailed(f"round {name!r} did not train at the learning rate you chose for it; set "
                              "learning_rate in its RoundConfig to that value.")
        return round_

    broken = trained("diverges", diverging_lr)
    if broken.status not in BROKE:
        mistake(f"round 'diverges' is {broken.status}, not broken: at this learning rate the lab saw no NaN, no "
                "exploding loss and no collapse of its score (train it with score=exact_match, as the others)",
                "where the range test stopped: it spent a few steps at each lr, a round spends all of its steps at "
                "one, and only a lr well past that point breaks a round")
    if not isinstance(advised_lr, int | float) or not 0 < advised_lr <= advised_bound(broken):
        mistake("advised_lr does not follow the lab's advice for round 'diverges'",
                "the advice printed under the round's verdict: by how much it says to lower the learning rate")
    advised = trained("advised", advised_lr)
    if not learned(advised):
        mistake(f"round 'advised' is {advised.status} and did not learn as a round should (its eval loss must fall "
                "by a fifth or more, its score must not collapse)",
                "the advice gives a bound, not a value: the rate must be at most what it says, and still one at which "
                "a round learns; the range test's curve says where that is")
    return passed("'diverges' broke, and following the lab's advice gave a round that learns")
