"""Checks of exercise 04 (beyond noise: repeats, the effect by hand, reading a failure)."""

from __future__ import annotations

import math

from ftlab.course.checks.base import CheckFailed, mistake, passed
from ftlab.course.checks.learning_rate import advised_bound, latest, learned
from ftlab.lab.repeats import repeats_of


def check_repeats(lab, baseline, changed, needed: int = 3) -> bool:
    """Exercise 04: rounds ``baseline`` and ``changed`` of ``lab`` each have ``needed`` successful repeats."""
    for id in (baseline, changed):
        round_ = lab.round(id)
        done = [r for r in repeats_of(lab.rounds(), round_) if r.status == "succeeded"]
        if len(done) < needed:
            raise CheckFailed(f"round {round_.id} ({round_.name}) has {len(done)} successful run(s); a spread needs "
                              f"at least {needed}.\nHint: revisit why one clone is not enough (chapter 04, section 2): "
                              f"lab.rerun({round_.id}, model=model, tokenizer=tokenizer) trains it again with another seed.")
    return passed(f"{needed} or more runs of each round: now their spread means something")


def check_effect_by_hand(lab, baseline, changed, difference, standard_error, beyond_noise) -> bool:
    """Exercise 04: the difference of mean eval losses, its pooled standard error, and the 95% decision."""
    for name, value in (("difference", difference), ("standard_error", standard_error)):
        if value is None:
            raise CheckFailed(f"{name} is still None: fill in the TODO cell above.")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise CheckFailed(f"{name} should be a number (a float), not a {type(value).__name__}.")
    try:
        found = lab.effect(baseline, changed)
    except ValueError as error:
        raise CheckFailed(f"{error}.\nHint: section 1 first: three runs of each round.") from None
    # one message whatever is off (size or sign), and none says which way: no oracle to steer a guess by
    if abs(difference - found.difference) > 1e-3 * max(abs(found.difference), 1e-9):
        raise CheckFailed("difference is not the changed round's mean eval loss minus the baseline's.\nHint: average "
                          "the eval loss over *all* the runs of each round (the first one and its repeats), then "
                          "subtract the baseline's mean from the changed round's.")
    if abs(standard_error - found.standard_error) > 1e-3 * found.standard_error:
        raise CheckFailed("standard_error is not the pooled standard error of that difference.\nHint: revisit the "
                          "pooled spread: the sample standard deviation of each set (divide by n - 1), pooled as "
                          "sqrt(((na-1) sa² + (nb-1) sb²) / (na + nb - 2)), times sqrt(1/na + 1/nb).")
    if not isinstance(beyond_noise, bool):
        raise CheckFailed("beyond_noise should be True or False.")
    if beyond_noise != found.beyond_noise:
        raise CheckFailed("beyond_noise is not what the numbers say.\nHint: compare |difference| / standard_error with "
                          "the 95% critical value of Student's t for na + nb - 2 degrees of freedom (chapter 04).")
    return passed("difference, standard error and decision agree with lab.effect")


def check_failure_reading(lab, name, failure_kind, next_learning_rate) -> bool:
    """Exercise 04: the class of failure of round ``name``, and a round named "next" at a learning rate that
    follows the lab's advice and learns: the evidence is that round, not the number alone (a rate of 1e-12
    follows "lower it" and learns nothing)."""
    round_ = lab.round(name)
    if round_.status not in ("diverged", "collapsed", "failed"):
        raise CheckFailed(f"round {name!r} is {round_.status}: there is no failure to read.\nHint: train it (the cell "
                          "above) with score=exact_match at a rate far too high, after the scored round 'steady'.")
    kind = (round_.failure or {}).get("kind")
    if failure_kind is None or next_learning_rate is None:
        raise CheckFailed("failure_kind or next_learning_rate is still None: fill in the TODO cell above.")
    if failure_kind != kind:
        raise CheckFailed("failure_kind is not the class of failure the lab recorded for this round.\nHint: read "
                          f"the round's verdict (lab.round({name!r}).verdict()): the class is in brackets.")
    if not isinstance(next_learning_rate, int | float) or isinstance(next_learning_rate, bool) or \
            not 0 < next_learning_rate <= advised_bound(round_):
        mistake("next_learning_rate does not follow the advice for round 'too high'",
                "the advice printed under the round's verdict: by how much it says to lower the learning rate")
    following = latest(lab, "next")
    if following is None:
        raise CheckFailed("the lab has no round named 'next': train it at next_learning_rate with "
                          "lab.train(..., name='next', score=exact_match).")
    if not math.isclose(following.config.learning_rate, next_learning_rate, rel_tol=1e-3):
        raise CheckFailed("round 'next' did not train at next_learning_rate; set learning_rate in its RoundConfig to "
                          "that value (or set next_learning_rate to the rate your last 'next' round trained at).")
    if not learned(following):
        mistake(f"round 'next' is {following.status} and did not learn as a round should (its eval loss must fall "
                "by a fifth or more, its exact match must not collapse)",
                "the advice gives a bound, not a value: lower by at least what it says, and still a rate at which "
                "the weights move; a round that breaks again has advice of its own (its verdict)")
    return passed(f"a {kind} round, read right, and a round at a rate that follows its advice and learns")
