"""Checks of exercise 00b (one supervised fine-tuning step written by hand, against ftlab's round).

The learner's ``sft_step(model, optimizer, batch)`` runs the forward pass, the loss on the answer tokens only, the
backward pass and the optimizer step. The check calls it on rows it draws itself, on a LoRA-wrapped copy of ftlab's
tiny model, and compares: its loss with the first logged loss of ``ftlab.train_round`` on the same rows (the
library's one call), its LoRA gradients with those of the library's own loss on an identical copy, and the weights
after its step with one AdamW step from those gradients. Nothing it prints holds the expected values.
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import secrets
import tempfile

from ftlab.config import RoundConfig
from ftlab.course.checks.base import mistake, passed, still_none
from ftlab.data import course_set
from ftlab.models.loading import tiny_model
from ftlab.round.train import add_lora, train_round
from ftlab.templates.template import Template

ROWS = 4  # one step over this many rows drawn afresh: the batch the round's first step sees too


def _drawn_rows() -> list[dict]:
    train, _ = course_set("demo")
    return random.Random(secrets.randbits(32)).sample(list(train), ROWS)


def _batch(template, rows):
    """input_ids, attention_mask and answer_mask (1 on the answer's tokens and its end-of-turn token), padded right."""
    import torch

    encoded = [template.encode(row["messages"]) for row in rows]
    width = max(len(ids) for ids, _ in encoded)
    pad = template.tokenizer.pad_token_id if template.tokenizer.pad_token_id is not None else 0
    batch = {name: torch.zeros((len(rows), width), dtype=torch.long) for name in ("attention_mask", "answer_mask")}
    batch["input_ids"] = torch.full((len(rows), width), pad, dtype=torch.long)
    for k, (ids, mask) in enumerate(encoded):
        batch["input_ids"][k, :len(ids)] = torch.tensor(ids)
        batch["attention_mask"][k, :len(ids)] = 1
        batch["answer_mask"][k, :len(ids)] = torch.tensor(mask)
    return batch


def _quiet():
    """The check's own rounds print nothing: the learner reads only the verdict."""
    out = io.StringIO()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(out))
    stack.enter_context(contextlib.redirect_stderr(out))
    return stack


def _lora(model):
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def check_sft_step(sft_step, lr: float = 1e-3) -> bool:
    """Exercise 00b: ``sft_step(model, optimizer, batch)`` is one supervised fine-tuning step (see the module)."""
    import torch
    from transformers import set_seed

    still_none("sft_step", sft_step)
    if not callable(sft_step):
        mistake(f"sft_step should be a function of (model, optimizer, batch), not a {type(sft_step).__name__}.",
                "def sft_step(model, optimizer, batch): ... return loss")
    with _quiet():
        base, tokenizer = tiny_model(progress=False)
    template, rows = Template.chat(tokenizer), _drawn_rows()
    config = RoundConfig.preset("cpu-tiny", learning_rate=lr, max_steps=1, batch_size=ROWS,
                                              gradient_accumulation_steps=1, warmup=0, lora_dropout=0.0,
                                              logging_steps=1, eval_steps=None, weight_decay=0.0)
    set_seed(config.seed)
    with _quiet():
        model = add_lora(base, config)  # the round's LoRA wrapping, over the base's weights
    reference = copy.deepcopy(model)
    batch = _batch(template, rows)
    optimizer = torch.optim.AdamW(list(_lora(model).values()), lr=lr, weight_decay=0.0)
    before = {name: p.detach().clone() for name, p in _lora(model).items()}
    try:
        loss = sft_step(model, optimizer, {k: v.clone() for k, v in batch.items()})
    except Exception as error:  # the learner's code: say what broke, in their terms
        mistake(f"sft_step(model, optimizer, batch) raised {type(error).__name__}: {error}",
                "the model takes input_ids and attention_mask and returns .logits, one row of scores per position")
    if not isinstance(loss, torch.Tensor | float) or (isinstance(loss, torch.Tensor) and loss.numel() != 1):
        mistake(f"sft_step returned a {type(loss).__name__}: it should return the loss (one number).", "return loss")
    loss = loss.item() if isinstance(loss, torch.Tensor) else float(loss)

    # the library's one call on the same rows: its first step's loss is the base's (LoRA's B starts at zero)
    quiet = tempfile.mkdtemp(prefix="ftlab-check-sft-")
    with _quiet():
        round_ = train_round(config, base, tokenizer, rows, output_dir=quiet)
    round_loss = next(h["loss"] for h in round_.log_history if "loss" in h)
    if abs(loss - round_loss) > 2e-3 * max(1.0, abs(round_loss)):
        mistake("your loss is not the loss ftlab's round computes on its first step for these rows.",
                "the loss counts only the answer's tokens (and its end-of-turn token): answer_mask marks them. "
                "Position t predicts token t + 1, so shift the logits and the targets by one, and average the "
                "cross-entropy over the tokens that count in the whole batch")

    # the library's own loss on an identical copy: labels -100 where nothing is learned, the model shifts itself
    labels = batch["input_ids"].masked_fill(batch["answer_mask"] == 0, -100)
    reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss.backward()
    theirs, ours = _lora(model), _lora(reference)
    if any(p.grad is None for p in theirs.values()):
        mistake("after sft_step the LoRA weights have no gradients.",
                "loss.backward() fills each trainable weight's .grad; zero the gradients before it, not after the step")
    if any(not torch.allclose(theirs[n].grad, ours[n].grad, rtol=1e-3, atol=1e-6) for n in ours):
        mistake("your LoRA gradients are not those of the round's loss on these rows.",
                "the gradients come from the answer-only loss, computed once per step from gradients set to zero "
                "before the backward pass (optimizer.zero_grad())")
    expected = torch.optim.AdamW(list(ours.values()), lr=lr, weight_decay=0.0)
    expected.step()
    if not all(torch.allclose(theirs[n].detach(), ours[n].detach(), rtol=1e-4, atol=1e-7) for n in ours):
        moved = any(not torch.equal(theirs[n].detach(), before[n]) for n in ours)
        mistake("the LoRA weights after sft_step are not one optimizer step from where they were"
                + ("" if moved else ": they did not move") + ".",
                "optimizer.step() after loss.backward(), once, with the optimizer the check passes in")
    return passed("your step computes the round's loss and gradients, and takes its optimizer step: this is what "
                  "ftlab.train_round repeats max_steps times")

