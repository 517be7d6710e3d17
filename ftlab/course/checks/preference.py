"""Checks of exercise 08 (the DPO loss and the reward margins by hand).

``check_dpo_loss`` calls the learner's function on tensors it draws itself, fresh at every call, and compares it with
``ftlab.course.by_hand.dpo``: there is no number to copy. ``check_reward_margins`` wants the per-pair margins of a
preference round the learner trained, on its held-out pairs: the check recomputes them from the round's model and
compares them one by one, and their mean with the round's record; the mean printed by the lab is one number, not
the margins, and shown to four digits only.
"""

from __future__ import annotations

from ftlab.course.checks.base import CheckFailed, mistake, passed, still_none
from ftlab.evaluation.preference import pair_logps, reference_of

REVISIT_LOSS = "the DPO loss of chapter 08: -log sigmoid(beta x ((pi_c - ref_c) - (pi_r - ref_r))), averaged over pairs"


def _draw(pairs: int, generator):
    import torch

    # sequence log-probabilities are sums of token log-probabilities: negative, tens of nats
    return [-(torch.rand(pairs, generator=generator) * 40 + 1) for _ in range(4)]


def check_dpo_loss(dpo_loss) -> bool:
    """Exercise 08: ``dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)`` returns the mean DPO
    loss over the batch (a tensor or a float), or (loss, margins)."""
    import torch

    from ftlab.course.by_hand.dpo import dpo_loss as reference

    still_none("dpo_loss", dpo_loss)
    if not callable(dpo_loss):
        mistake("dpo_loss is not a function.", "write it as def dpo_loss(policy_chosen, policy_rejected, ref_chosen, "
                "ref_rejected, beta): ... return loss")
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))  # new tensors every call
    for pairs, beta in ((1, 0.1), (7, 0.5), (16, 0.05)):
        tensors = _draw(pairs, generator)
        try:
            got = dpo_loss(*[t.clone() for t in tensors], beta)
        except Exception as error:  # noqa: BLE001 - the learner's code: name the error, not ftlab's traceback
            raise CheckFailed(f"dpo_loss raised {type(error).__name__}: {error}") from None
        got = got[0] if isinstance(got, tuple) else got
        got = float(got.mean() if hasattr(got, "numel") and got.numel() > 1 else got)
        expected = float(reference(*tensors, beta)[0])
        if abs(got - expected) <= 1e-5 * max(1.0, abs(expected)):
            continue
        swapped = float(reference(tensors[1], tensors[0], tensors[3], tensors[2], beta)[0])
        no_beta = float(reference(*tensors, 1.0)[0])
        summed = expected * pairs
        if abs(got - swapped) < 1e-5 * max(1.0, abs(swapped)):
            mistake("your loss rewards the rejected answer: it falls when the rejected one gains on the chosen one.",
                    "which log-ratio comes first in the margin")
        if abs(got - no_beta) < 1e-5 * max(1.0, abs(no_beta)):
            mistake("your loss does not change with beta.", "where beta multiplies the log-ratios")
        if pairs > 1 and abs(got - summed) < 1e-5 * max(1.0, abs(summed)):
            mistake(f"on a batch of {pairs} pairs your loss is the sum over pairs, not their mean.", REVISIT_LOSS)
        if got < 0:
            mistake("your loss is negative: -log of a probability never is.", "log sigmoid is at most 0")
        mistake(f"on a batch of {pairs} pairs (beta {beta}) your loss differs from DPO's.", REVISIT_LOSS)
    return passed("your DPO loss equals ftlab's (and TRL's) on three batches drawn just now")


def check_reward_margins(round_, margins) -> bool:
    """Exercise 08: ``margins``, one per held-out pair of the preference round ``round_`` (its model still in memory):
    beta x ((log pi_c - log ref_c) - (log pi_r - log ref_r)), the reference being the frozen SFT adapter."""
    import torch

    still_none("margins", margins)
    if round_ is None or getattr(round_, "model", None) is None or round_.record.get("kind") != "preference":
        mistake("round_ is not a preference round trained in this session.", "lab.prefer returns the round to use")
    pairs = list(round_.inputs.eval)
    if isinstance(margins, int | float) or (hasattr(margins, "numel") and margins.numel() == 1):
        mistake(f"margins is one number: the check wants the {len(pairs)} per-pair margins, one per held-out pair "
                "(the lab prints only their mean).", "compute them from pair_logps under the policy and under "
                "the reference")
    margins = torch.as_tensor(margins, dtype=torch.float32).flatten()
    if len(margins) != len(pairs):
        mistake(f"margins has {len(margins)} values for {len(pairs)} held-out pairs.", "one margin per pair, in the "
                "pairs' order")
    model, tokenizer, beta = round_.model, round_.inputs.tokenizer, round_.record["preference"]["beta"]
    chosen, rejected = pair_logps(model, tokenizer, pairs)
    _, use_reference = reference_of(model)
    with use_reference():
        ref_chosen, ref_rejected = pair_logps(model, tokenizer, pairs)
    expected = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    close = torch.isclose(margins, expected, rtol=1e-4, atol=1e-4)
    if close.all():
        mean = round_.metrics.get("reward_margin")
        told = ", and their mean is the lab's reward_margin" if mean is not None and abs(float(expected.mean()) - mean) < 1e-4 else ""
        return passed(f"your {len(pairs)} margins are the round's{told}")
    if torch.isclose(margins, expected / beta, rtol=1e-4, atol=1e-4).all():
        mistake("your margins are the log-ratio gaps without beta.", "the reward is beta x the log-ratio")
    if torch.isclose(margins, -expected, rtol=1e-4, atol=1e-4).all():
        mistake("your margins have the wrong sign.", "the chosen answer's reward minus the rejected one's")
    if torch.isclose(margins, beta * (chosen - rejected), rtol=1e-4, atol=1e-4).all():
        mistake("your margins leave the reference out.", "a reward compares the policy with the reference: "
                "use reference_of(model) to switch to it")
    mistake(f"{int((~close).sum())} of {len(pairs)} margins differ from the round's.",
            "the margin of chapter 08, with pair_logps under the policy and under the reference")
