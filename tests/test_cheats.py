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


# ------------------------------------------------------------------------------------------ 00: count what trains
def test_00_part_2_says_nothing_part_3_could_copy_and_part_3_wants_the_formula(tiny, capsys):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(tiny[0], LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                         "o_proj"], task_type="CAUSAL_LM"))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert checks.check_trainable_share(peft_model, trainable / total)
    said = capsys.readouterr().out
    assert f"{trainable:,}" not in said and str(trainable) not in said, said  # part 3's answer, never printed
    for cheat in (trainable, lambda cfg, r: trainable):  # `predicted = trainable`, as a number or a function
        refused(checks.check_lora_param_count, peft_model, cheat, revisit="function of|Revisit: the count follows",
                answers=(trainable,))


# ------------------------------------------------------------------------------------------ 01: repair, then prove
ROWS = [{"messages": [{"role": "user", "content": "Double 4."}, {"role": "assistant", "content": "8"}]},
        {"messages": [{"role": "human", "content": "Double 5."}, {"role": "assistant", "content": "10"}]},
        {"messages": [{"role": "user", "content": "Double 6."}, {"role": "assistant", "content": 12}]},
        {"messages": [{"role": "user", "content": "Double 8."}]}]


def test_01_any_valid_rows_are_not_a_repair_and_the_library_call_is_not_a_proof(tiny):
    import copy

    import ftlab

    def row(question, answer):
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}

    any_valid = [row(f"Say {i}.", str(i)) for i in range(len(ROWS))]
    refused(checks.check_rows_fixed, any_valid, ROWS, revisit="not these rows repaired.*\nRevisit: the findings")
    dropped_question = copy.deepcopy(any_valid[:1]) + [row("Double 5.", "10"), row("Double 6.", "12"), row("x", "16")]
    refused(checks.check_rows_fixed, dropped_question, ROWS, revisit="what each author wrote")
    repaired = [ROWS[0], row("Double 5.", "10"), row("Double 6.", "12"), row("Double 8.", "16")]
    assert checks.check_rows_fixed(repaired, ROWS)
    template = ftlab.Template.chat(tiny[1])
    refused(checks.check_prompt_matches, template, lambda template, messages: template.prompt(messages),
            revisit="cut the prompt out of the training text")  # part 3 once passed with the very call it asks for
    refused(checks.check_prompt_matches, template, template.prompt(ROWS[0]["messages"]), revisit="function of")


# ------------------------------------------------------------------------------------------ 02: graded as a whole
T4_CONFIGS = [dict(quantization=None, gradient_checkpointing=False, batch_size=16, max_length=1024, rows=2000),
              dict(quantization=None, gradient_checkpointing=False, batch_size=2, max_length=1024, rows=2000),
              dict(quantization="4bit", gradient_checkpointing=True, batch_size=16, max_length=1024, rows=2000),
              dict(quantization=None, gradient_checkpointing=True, batch_size=64, max_length=1024, rows=2000)]


def test_02_a_flip_and_rerun_learns_nothing_from_the_message():
    from ftlab.memory.estimate import plan

    right = [plan(checks.TINYLLAMA, gpu="T4", **c).fits for c in T4_CONFIGS]
    fastest = min((i for i, f in enumerate(right) if f), key=lambda i: plan(checks.TINYLLAMA, gpu="T4",
                                                                          **T4_CONFIGS[i]).epoch_s)
    messages = set()
    for i in range(len(right)):  # flip one entry at a time: every flip must read the same, naming no index
        flipped = [not f if k == i else f for k, f in enumerate(right)]
        messages.add(refused(checks.check_t4_predictions, T4_CONFIGS, flipped, fastest, revisit="grades them together"))
    for other in set(range(len(right))) - {fastest}:
        messages.add(refused(checks.check_t4_predictions, T4_CONFIGS, right, other, revisit="grades them together"))
    assert len(messages) == 1, messages  # one verdict for every wrong answer: no oracle
    assert not any(f"fits[{i}]" in m or f"configuration {i}" in m for m in messages for i in range(len(right)))
    from ftlab.machine import choose_precision

    truth = {d: choose_precision(c) for d, c in checks.PRECISION_DEVICES.items()}
    said = {refused(checks.check_precision_choice, {**truth, d: "fp32" if truth[d] != "fp32" else "fp16"},
                    revisit="graded as a whole") for d in truth}
    assert len(said) == 1 and not any(repr(d) in next(iter(said)) for d in truth), said


def test_02_the_learner_copy_prints_no_plan_that_answers_it():
    import json
    from pathlib import Path

    learner = Path(__file__).resolve().parent.parent / "exercises" / "02_fit_on_a_t4.ipynb"
    cells = ["".join(c["source"]) for c in json.loads(learner.read_text())["cells"] if c["cell_type"] == "code"]
    assert not any("plan(**configs[" in c and "configs[fastest]" not in c for c in cells), cells
    assert not any("suggest(" in c for c in cells)


# ------------------------------------------------------------------------------------------ 03: functions, fresh pairs
def test_03_flips_and_bisection_have_nothing_to_steer_by():
    from ftlab.evaluation import metrics

    def exact_match(prediction, reference):
        return metrics.exact_match([prediction], [reference])

    def f1(prediction, reference):
        return metrics.f1([prediction], [reference])

    values = [0, 1, 0]  # the old answer: numbers for three pairs, which a per-index verdict let one flip
    refused(checks.check_em_f1_by_hand, values, f1, revisit="should be a function")
    for guess in (0.0, 0.5, 0.667, 1.0):  # a constant F1: bisection on "too high / too low" once found each value
        message = refused(checks.check_em_f1_by_hand, exact_match, lambda p, r, g=guess: g,
                          revisit="disagrees with SQuAD's rule.*\nHint: work that pair out")
        assert "too high" not in message and "too low" not in message
    assert checks.check_em_f1_by_hand(exact_match, f1)


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


# ------------------------------------------------------------------------------------------ 00b: the step by hand
def test_00b_the_step_by_hand_passes_and_a_loss_over_every_token_is_refused():
    import torch

    def step(model, optimizer, batch, counted="answer_mask"):
        optimizer.zero_grad()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        counts = batch[counted][:, 1:].bool()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1][counts], batch["input_ids"][:, 1:][counts])
        loss.backward()
        optimizer.step()
        return loss

    assert checks.check_sft_step(step)
    refused(checks.check_sft_step, lambda m, o, b: step(m, o, b, counted="attention_mask"),  # prompt tokens too
            revisit="not the loss ftlab's round computes.*\nRevisit: the loss counts only the answer's tokens")
