"""Checks of exercise 04 (beyond noise: repeats, the effect by hand, reading a failure)."""

from __future__ import annotations

from ftlab.course.checks.base import CheckFailed, passed
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
    if abs(abs(difference) - abs(found.difference)) <= 1e-3 * abs(found.difference) and \
            (difference > 0) != (found.difference > 0):
        raise CheckFailed("difference has the right size but the wrong sign.\nHint: take the changed round's mean "
                          "minus the baseline's, so that a positive number means a higher eval loss.")
    if abs(difference - found.difference) > 1e-3 * max(abs(found.difference), 1e-9):
        raise CheckFailed("difference is not the difference of the two means.\nHint: average the eval loss over *all* "
                          "the runs of each round (the first one and its repeats), then subtract.")
    if abs(standard_error - found.standard_error) > 1e-3 * found.standard_error:
        way = "too large" if standard_error > found.standard_error else "too small"
        raise CheckFailed(f"standard_error is {way}.\nHint: revisit the pooled spread: the sample standard "
                          "deviation of each set (divide by n - 1), pooled as sqrt(((na-1) sa² + (nb-1) sb²) / "
                          "(na + nb - 2)), times sqrt(1/na + 1/nb).")
    if not isinstance(beyond_noise, bool):
        raise CheckFailed("beyond_noise should be True or False.")
    if beyond_noise != found.beyond_noise:
        raise CheckFailed("beyond_noise is not what the numbers say.\nHint: compare |difference| / standard_error with "
                          "the 95% critical value of Student's t for na + nb - 2 degrees of freedom (chapter 04).")
    return passed("difference, standard error and decision agree with lab.effect")


def check_failure_reading(lab, name, failure_kind, next_learning_rate) -> bool:
    """Exercise 04: the class of failure of round ``name``, and a learning rate that follows the lab's advice."""
    round_ = lab.round(name)
    if round_.status == "succeeded":
        raise CheckFailed(f"round {name!r} succeeded: train it at a learning rate high enough to diverge.")
    kind = (round_.failure or {}).get("kind")
    if failure_kind is None or next_learning_rate is None:
        raise CheckFailed("failure_kind or next_learning_rate is still None: fill in the TODO cell above.")
    if failure_kind != kind:
        raise CheckFailed("failure_kind is not the class of failure the lab recorded for this round.\nHint: read "
                          f"the round's verdict (lab.round({name!r}).verdict()): the class is in brackets.")
    lr = round_.config.learning_rate
    if not isinstance(next_learning_rate, int | float) or not 0 < next_learning_rate <= lr / 10 * (1 + 1e-9):
        raise CheckFailed("next_learning_rate does not follow the advice.\nHint: read the advice under the verdict: "
                          "by how much should the learning rate change after a divergence?")
    return passed(f"a {kind} round, and a learning rate that follows the lab's advice")
