"""Each exercise's check against the shortcuts a learner could take instead of the skill (issue 24).

A cheat is an answer that needs no understanding: a value copied from another part's success message, any valid
rows instead of the repaired ones, a flip of the one boolean a message named, a bisection steered by "too high /
too low", a learning rate that learns nothing. Each is run against its check here, which must refuse it with a
message that names the idea to revisit and not the answer. The checks are called on crafted inputs and on lab
rounds written as records: nothing trains, so every verdict is the same on any CPU.
"""

import math

import pytest

from ftlab.course import checks
from ftlab.course.checks import CheckFailed


def refused(check, *args, revisit: str, answers=(), **kwargs) -> str:
    """``check(*args)`` must fail naming ``revisit`` (a regex) and printing none of ``answers``."""
    with pytest.raises(CheckFailed) as failed:
        check(*args, **kwargs)
    message = str(failed.value)
    import re

    assert re.search(revisit, message, re.I), f"the message does not name the idea ({revisit!r}):\n{message}"
    for answer in answers:
        for form in ({repr(answer), str(answer)} if not isinstance(answer, float) else
                     {f"{answer:g}", f"{answer:.2g}", f"{answer:.3g}", repr(answer)}):
            assert form not in message, f"the message gives the answer away ({form}):\n{message}"
    return message


# ------------------------------------------------------------------------------------------ lab rounds as records
def recorded(lab, name, lr, status="succeeded", before=4.0, after=1.0, kind=None, scores=None):
    """Write a finished round into ``lab`` as the lab itself records one: what the checks read, no training."""
    import ftlab
    from ftlab.lab.round import Round
    from ftlab.lab.storage import new_round_folder

    number, folder = new_round_folder(lab.path)
    config = ftlab.RoundConfig.preset("cpu-tiny", learning_rate=lr)
    metrics = {"train_loss": after, "eval_loss_before": before, "eval_loss": after, **(scores or {})}
    if scores:
        metrics["scores"] = list(scores)
    failure = {"kind": kind, "message": "recorded", "advice": "recorded"} if kind else None
    round_ = Round(folder, {"id": number, "name": name, "status": status, "config": config.to_dict(),
                            "seed": config.seed, "data": {}, "template": {}, "base_model": "tiny", "repeat_of": None,
                            "metrics": metrics, "failure": failure})
    round_.update()
    return round_


@pytest.fixture
def lab(tmp_path):
    import ftlab

    return ftlab.Lab(tmp_path / "lab")


# ------------------------------------------------------------------------------------------ 04: read a failure
def test_04_a_rate_that_learns_nothing_does_not_follow_the_advice(lab):
    recorded(lab, "steady", 1e-3, scores={"exact_match": 1.0})
    recorded(lab, "too high", 0.1, "collapsed", after=2.0, kind="accuracy collapse", scores={"exact_match": 0.0})
    with pytest.raises(CheckFailed, match="still None"):
        checks.check_failure_reading(lab, "too high", None, None)
    # the cheat: a rate far below the advice's bound, with no round at it, then with its round (which learned nothing)
    refused(checks.check_failure_reading, lab, "too high", "accuracy collapse", 1e-12, revisit="no round named 'next'")
    recorded(lab, "next", 1e-12, "collapsed", after=4.0, kind="accuracy collapse", scores={"exact_match": 0.0})
    refused(checks.check_failure_reading, lab, "too high", "accuracy collapse", 1e-12,
            revisit="Revisit: the advice gives a bound, not a value")
    # above the advice's bound (three times lower after a collapse): refused without saying the bound
    recorded(lab, "next", 0.05, after=1.0, scores={"exact_match": 1.0})
    refused(checks.check_failure_reading, lab, "too high", "accuracy collapse", 0.05,
            revisit="Revisit: the advice printed", answers=(0.1 / 3,))
    refused(checks.check_failure_reading, lab, "too high", "divergence", 0.01, revisit="verdict",
            answers=("accuracy collapse",))
    recorded(lab, "next", 0.01, after=1.0, scores={"exact_match": 1.0})  # a retry: the newest 'next' is judged
    assert checks.check_failure_reading(lab, "too high", "accuracy collapse", 0.01)


# ------------------------------------------------------------------------------------------ 05: the lab's advice
def test_05_the_advice_check_judges_the_rounds_the_learner_ran(lab, tmp_path):
    import ftlab

    calm = ftlab.Lab(tmp_path / "calm")
    recorded(calm, "diverges", 3e-3)
    with pytest.raises(CheckFailed, match="still None"):
        checks.check_lr_advice(calm, None, 1e-3)
    refused(checks.check_lr_advice, calm, 3e-3, 3e-4, revisit=r"is succeeded, not broken.*\nRevisit: where the range")
    recorded(lab, "diverges", 0.9, "diverged", after=math.nan, kind="divergence")
    for wrong in (0.5, 0.9, "0.09"):  # above the bound, or not a number: one message, the advised value unsaid
        refused(checks.check_lr_advice, lab, 0.9, wrong, revisit="does not follow the lab's advice", answers=(0.09,))
    refused(checks.check_lr_advice, lab, 0.9, 0.09, revisit="no round named 'advised'")
    recorded(lab, "advised", 1e-9, after=3.9)  # the cheat: a rate that learns nothing
    refused(checks.check_lr_advice, lab, 0.9, 1e-9, revisit="the advice gives a bound, not a value")
    recorded(lab, "advised", 0.05, after=1.0)
    assert checks.check_lr_advice(lab, 0.9, 0.05)
    collapsed = ftlab.Lab(tmp_path / "collapsed")  # a collapse's advice: three times lower, or more
    recorded(collapsed, "diverges", 0.3, "collapsed", after=2.0, kind="accuracy collapse")
    recorded(collapsed, "advised", 0.09, after=1.0)
    assert checks.check_lr_advice(collapsed, 0.3, 0.09)
