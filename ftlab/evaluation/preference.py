"""Held-out preference pairs, measured (chapter 08): which answer a model prefers, and whether its answers repeat.

For each held-out pair (``ftlab.data.load_pairs``) the log-probability of the chosen and of the rejected answer
(the sum over the answer's tokens, the prompt in the model's own chat format, as TRL's ``DPOTrainer`` scores them):

- ``preference_accuracy``: the share of pairs whose chosen answer the model finds more likely than the rejected
  one: comparable across the base model, the SFT round and the preference round;
- against a reference (a preference round's is the SFT adapter it started from, which TRL keeps as a frozen
  "ref" adapter; an SFT round's is its base, the adapter disabled) the implicit rewards
  ``beta * (log pi - log ref)``: ``reward_accuracy`` (chosen rewarded above rejected, TRL's
  ``rewards/accuracies``) and ``reward_margin``, their mean gap (TRL's ``rewards/margins``);
- ``chosen_logp``: the chosen answers' mean log-probability (a preference round that raises the margin by
  making both answers unlikely shows it here);
- ``repeated_3grams``: the behaviour the course's pairs target, the mean share of repeated word 3-grams in
  answers generated to the held-out prompts (``ftlab.evaluation.generation.repeated_share``).

``measure`` returns them; ``scorer`` makes the ``score`` function the lab records beside a round's losses.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

from ftlab.data.preference_pairs import prompt_text
from ftlab.evaluation.generation import answers, repeated_share


@dataclass
class PreferenceScores:
    """What ``measure`` found on held-out pairs (reward figures are None without a reference)."""

    pairs: int
    preference_accuracy: float
    chosen_logp: float
    reward_accuracy: float | None
    reward_margin: float | None
    repeated_3grams: float | None
    beta: float
    reference: str | None  # "ref adapter", "adapter disabled" or None

    def as_scores(self) -> dict:
        """The figures a lab round records beside its losses (None left out)."""
        names = ("preference_accuracy", "reward_accuracy", "reward_margin", "chosen_logp", "repeated_3grams")
        return {k: v for k, v in asdict(self).items() if k in names and v is not None}

    def __str__(self) -> str:
        parts = [f"preference accuracy {self.preference_accuracy:.0%} of {self.pairs} pairs",
                 f"chosen log-prob {self.chosen_logp:.2f}"]
        if self.reward_margin is not None:
            parts += [f"reward accuracy {self.reward_accuracy:.0%} and margin {self.reward_margin:.3f} "
                      f"(beta {self.beta:g}, against the {self.reference})"]
        if self.repeated_3grams is not None:
            parts.append(f"repeated 3-grams {self.repeated_3grams:.1%}")
        return "; ".join(parts)


def encode(tokenizer, prompt, answer) -> tuple[list[int], int]:
    """Token ids of prompt + answer and where the answer starts: chat pairs in the tokenizer's chat format (the
    answer with its end-of-turn), plain pairs glued as they are (the answer ending with eos)."""
    if isinstance(prompt, list):
        asked = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        whole = tokenizer.apply_chat_template([*prompt, *answer], tokenize=False)
        if not whole.startswith(asked):
            raise ValueError("the chat template writes the prompt differently once an answer follows it: the "
                             "answer's tokens cannot be told apart")
        head = tokenizer(asked, add_special_tokens=False)["input_ids"]
        tail = tokenizer(whole[len(asked):], add_special_tokens=False)["input_ids"]
    else:
        head = tokenizer(prompt)["input_ids"]
        tail = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return head + tail, len(head)


def pair_logps(model, tokenizer, pairs, batch_size: int = 8, max_length: int | None = None):
    """Log-probabilities of every pair's chosen and rejected answer under ``model`` as it is now (two tensors).

    ``max_length`` cuts prompt + answer from the end, as the preference round's trainer does."""
    import torch

    sequences = [encode(tokenizer, p["prompt"], p[side]) for side in ("chosen", "rejected") for p in pairs]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    totals = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(sequences), batch_size):
            chunk = [(ids[:max_length] if max_length else ids, begin) for ids, begin in sequences[start:start + batch_size]]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros_like(ids)
            answer = torch.zeros_like(ids, dtype=torch.float32)
            for row, (tokens, begin) in enumerate(chunk):
                ids[row, :len(tokens)] = torch.tensor(tokens)
                attention[row, :len(tokens)] = 1
                answer[row, begin:len(tokens)] = 1
            ids, attention, answer = ids.to(device), attention.to(device), answer.to(device)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=attention).logits.float()
            logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            totals.append((logps * answer[:, 1:]).sum(dim=-1).cpu())
    finally:
        model.train(was_training)
    both = torch.cat(totals)
    return both[:len(pairs)], both[len(pairs):]


def reference_of(model):
    """How ``model``'s reference is reached, and a context manager that switches to it: a preference round's
    frozen "ref" adapter (TRL's copy of the SFT adapter), else the model with its adapter disabled (the base),
    else None (a model without adapters has no reference)."""
    configs = getattr(model, "peft_config", None)
    if not configs:
        return None, None
    if "ref" in configs:
        @contextlib.contextmanager
        def use_ref():
            active = model.active_adapter
            model.set_adapter("ref")
            try:
                yield
            finally:
                model.set_adapter(active)
                for name, param in model.named_parameters():  # set_adapter marks "ref" trainable: it stays frozen
                    if ".ref." in name:
                        param.requires_grad_(False)

        return "ref adapter", use_ref
    return "adapter disabled", model.disable_adapter


def measure(model, tokenizer, pairs, beta: float = 0.1, generate: int = 8, max_new_tokens: int = 48,
            batch_size: int = 8, max_length: int | None = None) -> PreferenceScores:
    """The held-out figures of ``model`` on ``pairs`` (see the module's docstring); ``generate`` prompts (distinct,
    the first ones) are answered greedily for ``repeated_3grams`` (0: none generated)."""
    import torch

    chosen, rejected = pair_logps(model, tokenizer, pairs, batch_size, max_length)
    reference, switch = reference_of(model)
    reward_accuracy = reward_margin = None
    if switch is not None:
        with switch():
            ref_chosen, ref_rejected = pair_logps(model, tokenizer, pairs, batch_size, max_length)
        margins = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
        reward_accuracy, reward_margin = float((margins > 0).float().mean()), float(margins.mean())
    repeats = None
    if generate:
        prompts = list(dict.fromkeys(prompt_text(p["prompt"]) for p in pairs))[:generate]
        written = answers(model, tokenizer, prompts, max_new_tokens=max_new_tokens, progress=False)
        repeats = sum(repeated_share(text) for text in written) / len(written)
    return PreferenceScores(len(pairs), float((chosen > rejected).float().mean()), float(torch.mean(chosen)),
                            reward_accuracy, reward_margin, repeats, beta, reference)


def scorer(pairs, beta: float = 0.1, generate: int = 8, max_new_tokens: int = 48):
    """A ``score(model, tokenizer)`` for ``lab.train(score=...)``: an SFT round measured on the held-out pairs
    its preference round will be measured on, so ``lab.table()`` shows both rounds' figures side by side."""
    def score(model, tokenizer) -> dict:
        return measure(model, tokenizer, pairs, beta, generate, max_new_tokens).as_scores()

    return score
