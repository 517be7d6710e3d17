"""Sanity checks a careful engineer runs before trusting a round (chapter 00).

Habits, each one call:

* ``starting_loss(model, tokenizer, rows)``: the loss before training, beside ``ln(vocabulary size)``,
  the loss of a model that spreads its bet evenly over every token (``untrained_like(model)`` shows it). A freshly initialised model starts
  near it; a pretrained model starts below on text like its training data, and can start above on
  text it never saw (confidently wrong); above it on text the model should know points at labels that
  do not belong to the inputs (shifted, another model's tokenizer or template).
* ``token_losses(model, tokenizer, row)``: the loss of every token of one row, and whether it counts
  (only the answer and its end-of-turn token do; the prompt is masked with -100).

The third habit, looking at the data exactly as the model sees it, is ``Template.show(row)``: the
text decoded from the very ids the trainer gets, with the tokens that carry loss in ⟦brackets⟧.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from ftlab.evaluation.scoring import mean_nll
from ftlab.templates.template import Template


@dataclass
class StartingLoss:
    """The mean loss per answer token before training, against the loss of an even bet over the vocabulary."""

    loss: float
    vocabulary: int
    tokens: int

    @property
    def uniform(self) -> float:
        """ln(vocabulary size): the loss when every token gets probability 1 / vocabulary."""
        return math.log(self.vocabulary)

    @property
    def verdict(self) -> str:
        if self.loss > 1.2 * self.uniform:
            return ("above an even bet: the model is confidently wrong about these tokens. A pretrained model does that "
                    "on text unlike anything it was trained on; on text it should know, suspect labels that do not "
                    "match the inputs (shifted by hand, another model's tokenizer or template)")
        if self.loss > 0.8 * self.uniform:
            return ("about an even bet: what a model that knows nothing pays (a freshly initialised model starts here)")
        return "below an even bet: the model already predicts these answers better than chance (it is pretrained)"

    def __repr__(self) -> str:
        return (f"loss before training {self.loss:.2f} over {self.tokens:,} answer tokens; ln({self.vocabulary:,}) = "
                f"{self.uniform:.2f}: {self.verdict}")


def starting_loss(model, tokenizer, rows, template=None, max_length: int | None = 1024) -> StartingLoss:
    """The model's mean loss on the answer tokens of ``rows``, with ln(vocabulary) to compare it with."""
    loss, tokens = mean_nll(model, tokenizer, rows, max_length=max_length, template=template)
    return StartingLoss(loss, model.get_output_embeddings().weight.shape[0], tokens)


def untrained_like(model):
    """A randomly initialised model of the same class and vocabulary (one narrow layer): a model that knows nothing.

    Its starting loss shows what ``ln(vocabulary size)`` means; depth and width do not change it, so a
    small one does (a fresh copy of TinyLlama would take 4 GB for the same lesson).
    """
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    for name, value in dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                            num_key_value_heads=4, head_dim=16).items():
        setattr(config, name, value)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return AutoModelForCausalLM.from_config(config)


@dataclass
class TokenLosses:
    """One row's tokens, whether each carries loss, and the loss the model would pay on each."""

    tokens: list[str]
    counts: list[bool]
    losses: list[float | None]  # None for the first token: nothing before it predicts it

    @property
    def mean(self) -> float:
        """The row's loss as the trainer computes it: the mean over the tokens that count."""
        counted = [loss for loss, c in zip(self.losses, self.counts, strict=True) if c and loss is not None]
        return sum(counted) / len(counted)

    def __repr__(self) -> str:
        lines = [f"{'token':<16} {'in the loss':<12} loss"]
        for token, counts, loss in zip(self.tokens, self.counts, self.losses, strict=True):
            shown = "" if loss is None else f"{loss:6.2f}" + ("" if counts else "  (masked: -100)")
            lines.append(f"{token!r:<16} {'yes' if counts else '-':<12} {shown}")
        kept = sum(self.counts)
        lines.append(f"{kept} of {len(self.tokens)} tokens count; their mean, {self.mean:.2f}, is this row's loss")
        return "\n".join(lines)


def token_losses(model, tokenizer, row, template=None) -> TokenLosses:
    """The loss on every token of ``row`` (a chat row), and which of them count in training."""
    import torch

    template = template or Template.chat(tokenizer)
    ids, mask = template.encode(row["messages"] if isinstance(row, dict) else row)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0].float()
    finally:
        model.train(was_training)
    # position t predicts token t + 1: the loss of token t + 1 is -log p(token | tokens before it)
    picked = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(ids[1:], device=device)[:, None])
    losses = [None, *(-picked[:, 0]).tolist()]
    return TokenLosses([tokenizer.decode([i]) for i in ids], [bool(m) for m in mask], losses)

