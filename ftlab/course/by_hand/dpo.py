"""The DPO loss written out by hand, to read before using TRL's ``DPOTrainer`` (chapter 08).

For a prompt x with a preferred answer y_c (chosen) and a worse one y_r (rejected), DPO compares how much more
likely the policy (the model being trained) makes each answer than the reference (the model it started from):

    loss = -log sigmoid( beta * ( (log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x)) ) )

A sequence's log-probability is the sum of its answer tokens' log-probabilities (the prompt carries none).
``beta * (log pi - log ref)`` is the answer's implicit *reward*; the loss falls as the chosen answer's reward rises
above the rejected one's, and starts at log 2 (0.693), where policy and reference are the same model.
``sequence_logps`` and ``dpo_loss`` are those lines; a test checks them against TRL's loss on the same batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token | the tokens before it) over the answer's tokens, one number per sequence."""
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)        # position t predicts token t + 1
    token_logps = logps.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logps * answer_mask[:, 1:]).sum(dim=-1)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1):
    """The mean DPO loss over a batch of pairs, and each pair's reward margin."""
    chosen_reward = beta * (policy_chosen - ref_chosen)                # how much more likely than the reference
    rejected_reward = beta * (policy_rejected - ref_rejected)
    margin = chosen_reward - rejected_reward
    return -F.logsigmoid(margin).mean(), margin
