"""Tuning the knobs: a learning-rate range test for LoRA (``lr_find``); sweeps are in ``ftlab.lab.sweeps``.

The learning rate cost the seeds most (1e-5 learned almost nothing, 1.5e-3 collapsed a round). The
range test (Smith 2015, fastai's ``lr_find``) trains a throwaway adapter for a short run while the
learning rate grows exponentially from tiny to huge, smooths the loss, and stops once it diverges. The
curve shows where the loss falls fastest and where it blows up. Its suggestion is a starting point to
confirm with a short sweep, not an answer: range tests on transformers tend to suggest too high a
value (transformers #16013), and a range test's steps are not a round's steps.

The model it is given keeps its weights and its ``requires_grad`` flags: the adapter lives on a new module
tree over the same base weights (``ftlab.round.train.add_lora``, ``ftlab.round.shared_base``). A 4-bit or 8-bit base
shares QLoRA's fp32 casts of its norms, embeddings and output layer, as ``add_lora`` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ftlab.config import RoundConfig
from ftlab.machine import has_gpu
from ftlab.round.train import add_lora, keep_trainables_fp32, prepare_round
from ftlab.templates.template import Template

RULES = {
    "valley": "fastai's valley rule: the middle of the longest steadily falling stretch of the smoothed loss",
    "steepest": "steepest descent: where the smoothed loss falls fastest per decade of learning rate",
}


@dataclass
class LRFinding:
    """The range test's curve and its suggestion. ``plot()`` draws it; ``str()`` says what it means."""

    lrs: list[float]
    losses: list[float]  # raw loss of each step
    smoothed: list[float]  # bias-corrected exponential moving average of the loss
    suggestion: float
    rule: str
    steepest: float
    diverged_at: float | None  # the lr at which the smoothed loss exceeded 4x its best (None: never)
    start_lr: float
    end_lr: float
    notes: list[str] = field(default_factory=list)
    lora_scale: float | None = None  # alpha / r the test ran at: the rates it found hold at that scale

    def __str__(self) -> str:
        stop = (f"the loss diverged at lr {self.diverged_at:.2g}" if self.diverged_at is not None
                else f"the loss did not diverge up to lr {self.lrs[-1]:.2g}")
        scale = ("" if self.lora_scale is None else
                 f"\nMeasured at LoRA's alpha / r = {self.lora_scale:g}: learning_rate x alpha / r is what moves the "
                 "weights, so a round with another alpha / r needs the rate scaled by the ratio.")
        return (f"LR range test: {len(self.lrs)} steps from {self.start_lr:.0e} up; {stop}.\n"
                f"Suggestion: {self.suggestion:.2g} ({RULES[self.rule]}); steepest descent at {self.steepest:.2g}.\n"
                "This is a starting point, not an answer: confirm it with a short sweep (a few rounds around it),"
                " since range tests tend to suggest too high a value." + scale)

    __repr__ = __str__

    def plot(self, ax=None):
        """Smoothed loss against the learning rate (log scale), with the suggestion and divergence marked."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        ax.plot(self.lrs, self.losses, color="0.8", lw=0.8, label="loss")
        ax.plot(self.lrs, self.smoothed, label="smoothed loss")
        ax.axvline(self.suggestion, color="C2", ls="--", label=f"suggestion {self.suggestion:.2g} ({self.rule})")
        if self.diverged_at is not None:
            ax.axvline(self.diverged_at, color="C3", ls=":", label=f"diverged {self.diverged_at:.2g}")
        ax.set_xscale("log")
        top = max(self.smoothed[0] * 1.5, min(self.smoothed) * 2)
        ax.set_ylim(min(self.losses) * 0.9, top)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title("learning-rate range test")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        return ax


def lr_find(config: RoundConfig, model, tokenizer, train, start_lr: float = 1e-6, end_lr: float = 1.0,
            steps: int = 60, rule: str = "steepest", beta: float = 0.9, diverge_factor: float = 4.0,
            template=None) -> LRFinding:
    """Learning-rate range test: a throwaway LoRA adapter (``config``'s rank, targets, batch size, max
    length) trained for at most ``steps`` steps while the lr grows exponentially from ``start_lr`` to
    ``end_lr``; stops when the smoothed loss exceeds ``diverge_factor`` x its best or is not finite.

    Diverged means: not finite, above ``diverge_factor`` x its best, or climbed back a third of the way
    from its best to where it started (LoRA with gradient clipping rarely blows up 4x; it loses its gain).
    ``rule`` picks the suggestion: ``"steepest"`` (default) or ``"valley"`` (fastai's default). On ftlab's
    tiny CPU model valley picks a value that learns far less than 10x it (the test measures steepest).
    ``model`` comes back exactly as it was (same weights, same ``requires_grad`` flags).
    """
    import torch
    from transformers import set_seed

    if rule not in RULES:
        raise ValueError(f"rule must be one of {sorted(RULES)}, not {rule!r}")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr (got {start_lr}, {end_lr})")
    set_seed(config.seed)
    train_set, _, _ = prepare_round(config, model, template or Template.chat(tokenizer), train, None)
    tuned = add_lora(model, config)
    try:
        lrs, losses = _range_test(tuned, tokenizer, train_set, config, start_lr, end_lr, steps, beta,
                                  diverge_factor)
    finally:
        del tuned
        if has_gpu():
            torch.cuda.empty_cache()  # torch's own allocator cache: only torch can empty it
    smoothed = _smooth(losses, beta)
    diverged = _diverged(lrs, smoothed, diverge_factor)
    kept = [i for i, s in enumerate(smoothed) if math.isfinite(s) and (diverged is None or lrs[i] < diverged)]
    steep = _steepest([lrs[i] for i in kept], [smoothed[i] for i in kept])
    valley = _valley([lrs[i] for i in kept], [smoothed[i] for i in kept])
    finding = LRFinding(lrs, losses, smoothed, valley if rule == "valley" else steep, rule, steep, diverged,
                        start_lr, end_lr, lora_scale=config.lora_scale)
    print(finding)
    return finding


def _range_test(tuned, tokenizer, rows, config, start_lr, end_lr, steps, beta, diverge_factor):
    import torch

    device = next(p for p in tuned.parameters()).device
    keep_trainables_fp32(tuned)  # LoRA weights train in fp32, as in train_round
    trainable = [p for p in tuned.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=start_lr, weight_decay=config.weight_decay)
    tuned.train()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = torch.randperm(len(rows)).tolist()
    growth = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    lrs, losses = [], []
    for step in range(steps):
        lr = start_lr * growth**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        picked = [order[(step * config.batch_size + k) % len(order)] for k in range(config.batch_size)]
        batch = _batch([rows[i] for i in picked], pad, config.max_length, device)
        loss = tuned(**batch).loss
        value = loss.item()
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            break
        if _diverged(lrs, _smooth(losses, beta), diverge_factor) is not None:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return lrs, losses


def _batch(rows, pad, max_length, device):
    import torch

    ids = [r["input_ids"][:max_length] for r in rows]
    masks = [r["assistant_masks"][:max_length] for r in rows]
    width = max(len(i) for i in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    labels = torch.full((len(ids), width), -100, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for k, (row, mask) in enumerate(zip(ids, masks, strict=True)):
        input_ids[k, :len(row)] = torch.tensor(row)
        attention[k, :len(row)] = 1
        labels[k, :len(row)] = torch.tensor([t if m else -100 for t, m in zip(row, mask, strict=True)])
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device), "labels": labels.to(device)}


def _diverged(lrs, smoothed, factor):
    """The first lr whose smoothed loss is not finite, over ``factor`` x the best so far, or back a third
    of the way from the best so far to the first value (once the best is 5% below it); None if none."""
    best = math.inf
    for lr, value in zip(lrs, smoothed, strict=True):
        if not math.isfinite(value):
            return lr
        best = min(best, value)
        gain = smoothed[0] - best
        if value > factor * best or (gain > 0.05 * smoothed[0] and value > best + gain / 3):
            return lr
    return None


def _smooth(losses, beta):
    out, avg = [], 0.0
    for k, value in enumerate(losses):
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta ** (k + 1)))
    return out


def _steepest(lrs, smoothed):
    """The lr where the smoothed loss falls fastest per unit of log10(lr)."""
    if len(lrs) < 3:
        return lrs[0]
    slopes = [(smoothed[i + 1] - smoothed[i - 1]) / (math.log10(lrs[i + 1]) - math.log10(lrs[i - 1]))
              for i in range(1, len(lrs) - 1)]
    return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]


def _valley(lrs, smoothed):
    """fastai's valley: the longest stretch over which the loss keeps falling; two thirds of the way down it.

    (Longest decreasing subsequence of the smoothed loss, then its start plus half of a third past a third.)
    """
    n = len(smoothed)
    if n < 3:
        return lrs[0]
    run = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end] < run[i]:
            end, start = i, i - run[i]
    third = (end - start) / 3
    return lrs[min(n - 1, start + int(third) + int(third / 2))]
