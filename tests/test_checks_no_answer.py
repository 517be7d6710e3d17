"""The no-answer rule, for every exercise check: a wrong answer's message never contains the right one.

A learner who could copy the expected value out of a failed check would learn nothing from the exercise.
Each public ``check_*`` in ``ftlab.course.checks`` has a case here: a wrong answer, and the right value in
the forms a message could print it. A new check needs a case (a test fails until it has one), or a
reason in ``EXEMPT`` why it has no single right value to leak.
"""

import ast
import re
from types import SimpleNamespace

import pytest

from ftlab.course import checks
from ftlab.course.checks import CheckFailed
from ftlab.course.checks.lora import _naive_lora_count


def shown(value) -> set[str]:
    """The ways a message could print ``value``: repr, str, thousands separators, rounded, as a percentage."""
    if isinstance(value, bool | str):
        return {repr(value), str(value)} if isinstance(value, str) else {repr(value)}
    if isinstance(value, int):
        return {str(value), f"{value:,}", f"{value:_}"}
    if isinstance(value, float):
        return ({f"{value:.{d}f}" for d in range(2, 7)} | {f"{value:.{d}%}" for d in range(1, 4)}
                | {f"{value:g}", f"{value:.2g}", f"{value:.0e}", repr(value)})
    if isinstance(value, list | tuple):
        return {repr(value), repr(list(value)), str(value)}
    raise TypeError(value)


def failure(check, *args, **kwargs) -> str:
    """The message of ``check(*args, **kwargs)``, which must fail."""
    with pytest.raises(CheckFailed) as failed:
        check(*args, **kwargs)
    return str(failed.value)


def assert_no_answer(message: str, *answers) -> None:
    # a number counts as printed when it stands alone: "10" is not found inside "100" or "row 210"
    leaked = sorted(form for answer in answers for form in shown(answer)
                    if re.search(rf"(?<![\w.]){re.escape(form)}(?!\w|\.\d)", message))
    assert not leaked, f"the check's message gives the answer away ({leaked}):\n{message}"


def _peft_tiny(tiny):
    from peft import LoraConfig, get_peft_model

    model, _ = tiny
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                  task_type="CAUSAL_LM"))
    return peft_model, *peft_model.get_nb_trainable_parameters()


# ------------------------------------------------------------------ one case per check: wrong answer -> message
def case_lora_config(tiny):
    from peft import LoraConfig

    wrong = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
    assert_no_answer(failure(checks.check_lora_config, wrong), 16)


def case_trainable_share(tiny):
    peft_model, trainable, total = _peft_tiny(tiny)
    message = failure(checks.check_trainable_share, peft_model, trainable / (total - 1000))
    assert_no_answer(message, trainable / total, trainable, total)
    assert_no_answer(failure(checks.check_trainable_share, peft_model, 100 * trainable / total),
                     trainable / total)


def case_lora_param_count(tiny):
    peft_model, trainable, _ = _peft_tiny(tiny)
    naive = _naive_lora_count(peft_model)
    for wrong in (trainable + 1, lambda cfg, r: trainable - 1, lambda cfg, r: naive if r == 16 else 0):
        assert_no_answer(failure(checks.check_lora_param_count, peft_model, wrong), trainable)


def case_em_f1_by_hand(tiny):
    from ftlab.evaluation import metrics

    message = failure(checks.check_em_f1_by_hand, lambda p, r: metrics.exact_match([p], [r]), lambda p, r: 0.5)
    pair = re.search(r"e\.g\. ('.*') vs ('.*')\.\n", message)  # the pair it shows, never what f1 should give
    assert pair, message
    assert_no_answer(message, metrics.f1([ast.literal_eval(pair.group(1))], [ast.literal_eval(pair.group(2))]))


def case_cjk_rouge_tokenizer(tiny):
    class Words:
        def tokenize(self, text):
            return text.split()

    assert_no_answer(failure(checks.check_cjk_rouge_tokenizer, Words()), list("今天天气很好"))


def case_dedup_balance(tiny):
    from collections import Counter

    import ftlab

    raw = ftlab.data.arithmetic(300, seed=1, duplicates=0.3)
    unique, _ = ftlab.data.dedup(raw, progress=False)  # deduplicated but not capped at 10 per category
    counts = {min(n, 10) for n in Counter(row["category"] for row in unique).values()}
    assert_no_answer(failure(checks.check_dedup_balance, unique, raw, per_category=10), *counts)


def case_prompt_matches(tiny):
    import ftlab

    template = ftlab.Template.chat(tiny[1])
    row = [{"role": "user", "content": "Repeat after me: 7"}, {"role": "assistant", "content": "7"}]
    message = failure(checks.check_prompt_matches, template, lambda template, messages: "Double 4.")
    assert template.prompt(row) not in message and "<|" not in message, message


def case_label_mask(tiny):
    import ftlab

    template = ftlab.Template.chat(tiny[1])
    messages = [{"role": "user", "content": "Double 4."}, {"role": "assistant", "content": "8"}]
    ids, mask = template.encode(messages)
    right = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
    for wrong in (list(ids), [-100] * len(ids), right[:-1], [t if m else 0 for t, m in zip(ids, mask, strict=True)]):
        assert_no_answer(failure(checks.check_label_mask, template, messages, ids, wrong), right)


def case_tinyllama_lora_counts(tiny):
    right = 1_126_400, 12_615_680
    for wrong in ((8 * (2 * 2048 + 2 * 2048) * 22, right[1]), (right[0] // 22, right[1]), (right[0], right[1] + 1)):
        assert_no_answer(failure(checks.check_tinyllama_lora_counts, *wrong), *right)


def case_t4_predictions(tiny):
    configs = [dict(batch_size=16, max_length=1024, gradient_checkpointing=False, rows=2000),
               dict(batch_size=2, max_length=1024, gradient_checkpointing=False, rows=2000)]
    right = [False, True]
    assert_no_answer(failure(checks.check_t4_predictions, configs, [True, True], 1), right)
    message = failure(checks.check_t4_predictions, configs, right, 0)
    assert "configuration 1" not in message and "index 1" not in message, message


def case_precision_choice(tiny):
    from ftlab.machine import choose_precision

    right = {device: choose_precision(capability) for device, capability in checks.PRECISION_DEVICES.items()}
    for device in right:
        for wrong_value in {"fp16", "bf16", "fp32"} - {right[device]}:
            message = failure(checks.check_precision_choice, {**right, device: wrong_value})
            assert right[device] not in message, message


def case_lr_reading(tiny):
    lrs = [10 ** (-6 + i / 4) for i in range(21)]  # 1e-6 .. 1e-1
    smoothed = [3.0] * 6 + [3.0 - 0.2 * i for i in range(1, 9)] + [1.4 + 0.6 * i for i in range(1, 8)]
    finding = SimpleNamespace(lrs=lrs, smoothed=smoothed)
    bottom = lrs[smoothed.index(min(smoothed))]
    assert_no_answer(failure(checks.check_lr_reading, finding, bottom * 2, lrs[-1]), bottom)
    assert_no_answer(failure(checks.check_lr_reading, finding, bottom / 10, bottom / 10), bottom)


_IDS = iter(range(1, 10**6))


def _round(name, lr, status="succeeded", before=3.0, after=1.0):
    """A lab round as the learning-rate checks read it (ids count up, as a lab's do)."""
    failure = {"kind": "divergence"} if status == "diverged" else None
    return SimpleNamespace(id=next(_IDS), name=name, config=SimpleNamespace(learning_rate=lr), status=status,
                           failure=failure, metrics={"eval_loss_before": before, "eval_loss": after},
                           verdict=lambda: status)


def case_lr_advice(tiny):
    lab = SimpleNamespace(rounds=lambda: [_round("diverges", 0.9, "diverged"), _round("advised", 0.9)])
    assert_no_answer(failure(checks.check_lr_advice, lab, 0.9, 0.9), 0.09)  # the advice: ten times lower


def case_lr_rounds(tiny):
    round_ = _round

    lab = SimpleNamespace(rounds=lambda: [round_("good", 1e-3), round_("too high", 5e-2)])
    message = failure(checks.check_lr_rounds, lab, 1e-3, 5e-2)  # "too high" learned as well as "good"
    assert "diverge" in message
    lab = SimpleNamespace(rounds=lambda: [round_("good", 2e-3), round_("too high", 5e-2, "diverged")])
    assert_no_answer(failure(checks.check_lr_rounds, lab, 1e-3, 5e-2), 2e-3)


def case_chat_labels(tiny):
    import ftlab
    from tests.test_checks import chat_label_functions

    template = ftlab.Template.chat(tiny[1])
    conversation = ftlab.data.dialogues(5, eval_size=1)[0][0]["messages"]
    ids, mask = template.encode(conversation)
    right = [token if carries else -100 for token, carries in zip(ids, mask, strict=True)]
    for wrong in chat_label_functions()[1].values():
        assert_no_answer(failure(checks.check_chat_labels, template, tiny[1], wrong), right, sum(mask))


def _lab_of(runs: dict, failure=None):
    """A lab of Round records: {name: [(learning_rate, eval loss), ...]}, the first of each name repeated by the rest."""
    from ftlab.lab.effects import effect
    from ftlab.lab.round import Round

    rounds, first = [], {}
    for name, values in runs.items():
        for seed, (lr, loss) in enumerate(values, start=42):
            id = len(rounds) + 1
            first.setdefault(name, id)
            status = "diverged" if failure and loss is None else "succeeded"
            rounds.append(Round(f"/nonexistent/round-{id:03d}", {
                "id": id, "name": name, "status": status, "repeat_of": None if first[name] == id else first[name],
                "config": {"learning_rate": lr, "seed": seed}, "metrics": {} if loss is None else {"eval_loss": loss},
                "failure": failure if status == "diverged" else None, "data": {}, "template": {}, "base_model": "tiny"}))
    lab = SimpleNamespace(rounds=lambda: rounds)
    lab.round = lambda id: next(r for r in rounds if id in (r.id, r.name))
    lab.effect = lambda a, b: effect(rounds, lab.round(a), lab.round(b))
    return lab


def case_repeats(tiny):
    lab = _lab_of({"baseline": [(1e-3, 0.69)], "changed": [(2e-4, 0.8), (2e-4, 0.82), (2e-4, 0.81)]})
    assert "lab.rerun" in failure(checks.check_repeats, lab, "baseline", "changed")


def case_effect_by_hand(tiny):
    lab = _lab_of({"baseline": [(1e-3, 0.69), (1e-3, 0.70), (1e-3, 0.71)],
                   "changed": [(2e-4, 0.80), (2e-4, 0.82), (2e-4, 0.81)]})
    right = lab.effect("baseline", "changed")
    for wrong in ((-right.difference, right.standard_error, True), (0.05, right.standard_error, True),
                  (right.difference, 0.1, True), (right.difference, right.standard_error, False)):
        assert_no_answer(failure(checks.check_effect_by_hand, lab, "baseline", "changed", *wrong), right.difference,
                         right.standard_error, right.ratio)


def case_failure_reading(tiny):
    diverged = {"kind": "divergence", "message": "weights became NaN", "advice": "Lower the learning rate ten times."}
    lab = _lab_of({"too high": [(0.5, None)]}, failure=diverged)
    assert_no_answer(failure(checks.check_failure_reading, lab, "too high", "out of memory", 0.05), "divergence")
    assert_no_answer(failure(checks.check_failure_reading, lab, "too high", "divergence", 0.3), 0.05)


def case_merged_weight(tiny):
    import tempfile

    import torch
    from peft import LoraConfig, get_peft_model

    from ftlab.export import adapter as export

    model, tokenizer = tiny
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["v_proj"], task_type="CAUSAL_LM"))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data = torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.05
    folder = export.save_adapter(peft_model, tokenizer, tempfile.mkdtemp(prefix="ftlab-case-merged-"))
    layer = peft_model.base_model.model.model.layers[0].self_attn.v_proj
    weight = layer.base_layer.weight.detach()
    update = (layer.lora_B["default"].weight @ layer.lora_A["default"].weight).detach()
    right = weight + 2 * update
    for wrong in (weight, weight + update, right.T, right + 1e-3):
        message = failure(checks.check_merged_weight, wrong, folder, "model.layers.0.self_attn.v_proj")
        assert_no_answer(message, *right.flatten()[:8].tolist())


def case_merge_layer(tiny):
    """The formula as a function, tried on layers the check draws: wrong scales, a transpose, a copied tensor."""
    import torch

    fixed = torch.zeros(3, 3)
    for wrong in (lambda W, A, B, alpha, r: W + B @ A, lambda W, A, B, alpha, r: W + r / alpha * (B @ A),
                  lambda W, A, B, alpha, r: W, lambda W, A, B, alpha, r: fixed, "W + alpha / r * B @ A"):
        message = failure(checks.check_merge_layer, wrong)
        assert "Revisit" in message or "should be a function" in message, message
    assert checks.check_merge_layer(lambda W, A, B, alpha, r: W + alpha / r * (B @ A))


def case_dpo_loss(tiny):
    import torch.nn.functional as F

    from ftlab.course.by_hand.dpo import dpo_loss

    seen = []

    def summed(pc, pr, rc, rr, beta):  # the sum over pairs, not the mean
        seen.append(dpo_loss(pc, pr, rc, rr, beta)[0].item())
        return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum()

    assert_no_answer(failure(checks.check_dpo_loss, summed), *seen)
    assert_no_answer(failure(checks.check_dpo_loss, lambda pc, pr, rc, rr, beta: 0.5), *seen)


def _preference_round(tiny):
    """A stand-in for a preference round in memory: the tiny model with a random (non-zero) LoRA adapter, held-out
    pairs, and a record, as ``lab.prefer`` returns them."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ftlab.data import course_set
    from ftlab.data.preference_pairs import pairs_from_rows

    model, tokenizer = tiny
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                                                  task_type="CAUSAL_LM"))
    pairs = pairs_from_rows(course_set("demo")[1][:4])
    return SimpleNamespace(model=peft_model, inputs=SimpleNamespace(eval=pairs, tokenizer=tokenizer),
                           record={"kind": "preference", "preference": {"beta": 0.1}}, metrics={}), pairs


def case_reward_margins(tiny):
    from ftlab.evaluation.preference import measure

    round_, pairs = _preference_round(tiny)
    truth = measure(round_.model, round_.inputs.tokenizer, pairs, beta=0.1, generate=0)
    copied = round(truth.reward_margin, 4)  # the mean as the lab prints it
    assert_no_answer(failure(checks.check_reward_margins, round_, copied), truth.reward_margin, copied)
    assert_no_answer(failure(checks.check_reward_margins, round_, [copied] * len(pairs)), truth.reward_margin)


CASES = {name.removeprefix("case_"): case for name, case in dict(globals()).items() if name.startswith("case_")}
# checks with no single right value that a message could give away, and why
EXEMPT = {"rows_fixed": "the learner writes the repair; the check repeats ftlab.data.validate's findings, which the "
                        "exercise prints before its TODO cell",
          "sft_step": "its answer is a function; the loss and gradients it is compared with come from rows the check "
                      "draws at each call, and no message prints a number (tests/test_cheats.py runs the cheat)",
          "merged_weight": "its answer is a matrix built from a trained adapter: tests/test_export.py (test_the_merge_"
                           "check_names_each_mistake_without_the_answer) checks that no failure prints a tensor"}


def test_every_check_has_a_case():
    public = {name.removeprefix("check_") for name in dir(checks) if name.startswith("check_")}
    assert public - CASES.keys() - EXEMPT.keys() == set(), "add a case above for each new check"
    assert CASES.keys() | EXEMPT.keys() <= public, "a case names a check that no longer exists"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_wrong_answer_is_not_answered(name, tiny):
    CASES[name](tiny)
