"""Tuning the knobs: a learning-rate range test for LoRA (``lr_find``).

The learning rate cost the seeds most (1e-5 learned almost nothing, 1.5e-3 collapsed a round). The
range test (Smith 2015, fastai's ``lr_find``) trains a throwaway adapter for a short run while the
learning rate grows exponentially from tiny to huge, smooths the loss, and stops once it diverges. The
curve shows where the loss falls fastest and where it blows up. Its suggestion is a starting point to
confirm with a short sweep, not an answer: range tests on transformers tend to suggest too high a
value (transformers #16013), and a range test's steps are not a round's steps.

The model it is given is left exactly as it was: the adapter lives on a new module tree over the same
base weights (``ftlab.train.add_lora``) and the ``requires_grad`` flags PEFT changed are put back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ftlab.config import RoundConfig

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

    def __str__(self) -> str:
        stop = (f"the loss diverged at lr {self.diverged_at:.2g}" if self.diverged_at is not None
                else f"the loss did not diverge up to lr {self.lrs[-1]:.2g}")
        return (f"LR range test: {len(self.lrs)} steps from {self.start_lr:.0e} up; {stop}.\n"
                f"Suggestion: {self.suggestion:.2g} ({RULES[self.rule]}); steepest descent at {self.steepest:.2g}.\n"
                "This is a starting point, not an answer: confirm it with a short sweep (a few rounds around it),"
                " since range tests tend to suggest too high a value.")

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

    from ftlab.templates import Template
    from ftlab.train import add_lora, prepare_round

    if rule not in RULES:
        raise ValueError(f"rule must be one of {sorted(RULES)}, not {rule!r}")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr (got {start_lr}, {end_lr})")
    set_seed(config.seed)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    train_set, _, _ = prepare_round(config, model, template or Template.chat(tokenizer), train, None)
    tuned = add_lora(model, config)
    try:
        lrs, losses = _range_test(tuned, tokenizer, train_set, config, start_lr, end_lr, steps, beta,
                                  diverge_factor)
    finally:
        del tuned
        for name, p in model.named_parameters():  # PEFT froze the shared base weights: unfreeze as they were
            p.requires_grad_(flags[name])
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    smoothed = _smooth(losses, beta)
    diverged = _diverged(lrs, smoothed, diverge_factor)
    kept = [i for i, s in enumerate(smoothed) if math.isfinite(s) and (diverged is None or lrs[i] < diverged)]
    steep = _steepest([lrs[i] for i in kept], [smoothed[i] for i in kept])
    valley = _valley([lrs[i] for i in kept], [smoothed[i] for i in kept])
    finding = LRFinding(lrs, losses, smoothed, valley if rule == "valley" else steep, rule, steep, diverged,
                        start_lr, end_lr)
    print(finding)
    return finding


def _range_test(tuned, tokenizer, rows, config, start_lr, end_lr, steps, beta, diverge_factor):
    import torch

    device = next(p for p in tuned.parameters()).device
    trainable = [p for p in tuned.parameters() if p.requires_grad]
    for p in trainable:  # LoRA weights train in fp32 (as in train_round)
        p.data = p.data.float()
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


# ------------------------------------------------------------------------------------------ sweeps
@dataclass
class SweepPoint:
    """One point of a sweep: the knobs that differ from the baseline, its round (if one ran) and outcome."""

    knobs: dict
    phase: str  # "baseline", "one factor" or "grid"
    round_id: int | None
    status: str
    metric: float | None
    why: str = ""


@dataclass
class SweepResult:
    """All points of a sweep and the knobs ranked by effect; ``ranking()`` is a DataFrame, ``plot()`` bars."""

    baseline: RoundConfig
    metric: str
    points: list[SweepPoint]
    budget_note: str = ""

    def baseline_values(self) -> list[float]:
        return [p.metric for p in self.points if p.phase == "baseline" and p.metric is not None]

    def spread(self) -> float | None:
        """The repeat spread: max - min of the baseline's repeats (None with a single baseline round)."""
        values = self.baseline_values()
        return max(values) - min(values) if len(values) > 1 else None

    def ranking(self):
        """A row per knob tried one at a time: effect (max - min of the mean metric over its values, the
        baseline's value included; a failed value counts as the worst seen), best value, and whether the
        effect exceeds twice the repeat spread."""
        import pandas as pd

        base = self.baseline_values()
        worst = max((p.metric for p in self.points if p.metric is not None), default=math.nan)
        rows = []
        knobs = dict.fromkeys(k for p in self.points if p.phase == "one factor" for k in p.knobs)
        for knob in knobs:
            by_value = {}
            if base:
                by_value.setdefault(repr(getattr(self.baseline, knob)), []).append(sum(base) / len(base))
            failed = 0
            for p in self.points:
                if p.phase == "one factor" and list(p.knobs) == [knob]:
                    failed += p.metric is None
                    by_value.setdefault(repr(p.knobs[knob]), []).append(worst if p.metric is None else p.metric)
            means = {v: sum(m) / len(m) for v, m in by_value.items()}
            best = min(means, key=means.get)
            effect = max(means.values()) - min(means.values())
            spread = self.spread()
            rows.append({"knob": knob, "effect": effect, "best value": best, "values tried": len(means),
                         "failed": failed, "beyond noise": None if spread is None else effect > 2 * spread})
        table = pd.DataFrame(rows, columns=["knob", "effect", "best value", "values tried", "failed",
                                            "beyond noise"])
        return table.sort_values("effect", ascending=False, ignore_index=True)

    def best(self) -> SweepPoint | None:
        done = [p for p in self.points if p.metric is not None]
        return min(done, key=lambda p: p.metric) if done else None

    def conclusion(self) -> str:
        table = self.ranking()
        if table.empty:
            return "No knob was tried one at a time: nothing to rank."
        spread = self.spread()
        noise = (f"the repeat spread is {spread:.3f}" if spread is not None else
                 "with one baseline round the repeat spread is unknown (use repeats=2)")
        order = " > ".join(table["knob"])
        top = table.iloc[0]
        best = self.best()
        return (f"Knobs by effect on {self.metric}: {order}; {noise}. {top['knob']} matters most "
                f"({top['effect']:.3f}, best value {top['best value']}). Best round: {best.round_id} "
                f"{best.knobs or '(the baseline)'} with {self.metric} {best.metric:.3f}.")

    def __str__(self) -> str:
        lines = [f"Sweep: {len(self.points)} point(s), {sum(p.round_id is not None for p in self.points)} round(s)"
                 f"{'; ' + self.budget_note if self.budget_note else ''}."]
        for p in self.points:
            shown = f"{p.metric:.3f}" if p.metric is not None else "-"
            lines.append(f"  {p.phase:<10} round {p.round_id or '-':>3} {p.status:<11} {self.metric} {shown:>7} "
                         f"{p.knobs or 'baseline'} {p.why}")
        return "\n".join([*lines, self.conclusion()])

    __repr__ = __str__

    def plot(self, ax=None):
        """Effect per knob as bars, with twice the repeat spread as a line (effects below it may be noise)."""
        import matplotlib.pyplot as plt

        table = self.ranking()
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        ax.bar(table["knob"], table["effect"], color="C0")
        if (spread := self.spread()) is not None:
            ax.axhline(2 * spread, color="C3", ls="--", label="2 x repeat spread")
            ax.legend()
        ax.set_ylabel(f"effect on {self.metric}")
        ax.set_title("what each knob changes (one factor at a time)")
        ax.grid(alpha=0.3, axis="y")
        return ax


def sweep(lab, baseline: RoundConfig, space: dict, model, tokenizer, train, eval=None, budget_rounds: int | None = None,
          budget_minutes: float | None = None, repeats: int = 1, grid_knobs: int = 2, metric: str = "eval_loss",
          **train_options) -> SweepResult:
    """One factor at a time around ``baseline``, then a small grid over the best values; every round in ``lab``.

    ``space`` maps a knob to the values to try (``{"learning_rate": [5e-4, 5e-3], "lora_dropout": [0.0, 0.1]}``).
    The baseline runs ``repeats`` times (seeds baseline.seed, +1, ...) to measure the noise; each knob's
    values run one at a time; then the ``grid_knobs`` knobs with the largest effect are combined at their
    best values. A round that fails (out of memory, divergence) is recorded in the lab and the sweep goes
    on; a value ``RoundConfig`` refuses is noted without a round. The sweep stops starting rounds once
    ``budget_rounds`` have run or ``budget_minutes`` have passed (a round under way is finished).
    """
    import dataclasses
    import itertools
    import time

    from ftlab.config import ConfigError

    if eval is None and metric == "eval_loss":
        raise ValueError("a sweep ranks knobs by eval loss: pass eval= rows (or metric='train_loss')")
    unknown = [k for k in space if k not in RoundConfig.__dataclass_fields__]
    if unknown:
        raise ValueError(f"unknown knob(s) {unknown}; RoundConfig knobs are {sorted(RoundConfig.__dataclass_fields__)}")
    started, points, note = time.monotonic(), [], ""

    def out_of_budget() -> bool:
        nonlocal note
        ran = sum(p.round_id is not None for p in points)
        if budget_rounds is not None and ran >= budget_rounds:
            note = f"stopped at the budget of {budget_rounds} round(s)"
        elif budget_minutes is not None and time.monotonic() - started >= 60 * budget_minutes:
            note = f"stopped at the budget of {budget_minutes:g} minute(s)"
        return bool(note)

    def run(knobs: dict, phase: str, seed_offset: int = 0) -> None:
        try:
            config = dataclasses.replace(baseline, **knobs, seed=baseline.seed + seed_offset)
        except ConfigError as error:
            points.append(SweepPoint(knobs, phase, None, "refused", None, str(error).splitlines()[0]))
            return
        name = "sweep " + (", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in knobs.items()) or "baseline")
        round_ = lab.train(config, model, tokenizer, train, eval, name=name, **train_options)
        value = round_.metrics.get(metric) if round_.status == "succeeded" else None
        why = "" if round_.status == "succeeded" else (round_.record.get("failure") or {}).get("kind", "")
        points.append(SweepPoint(knobs, phase, round_.id, round_.status, value, why))

    for k in range(max(1, repeats)):
        if not out_of_budget():
            run({}, "baseline", k)
    for knob, values in space.items():
        for value in values:
            if value != getattr(baseline, knob) and not out_of_budget():
                run({knob: value}, "one factor")
    partial = SweepResult(baseline, metric, points)
    table = partial.ranking()
    base = partial.baseline_values()
    base_mean = sum(base) / len(base) if base else math.inf
    winners = {}  # knob -> its best value, for knobs whose best beats the baseline
    for row in table.head(grid_knobs).itertuples():
        done = [p for p in points if p.phase == "one factor" and list(p.knobs) == [row.knob] and p.metric is not None]
        if done and (best := min(done, key=lambda p: p.metric)).metric < base_mean:
            winners[row.knob] = best.knobs[row.knob]
    if len(winners) > 1:
        choices = [[getattr(baseline, k), v] for k, v in winners.items()]
        for combo in itertools.product(*choices):
            knobs = {k: v for k, v in zip(winners, combo, strict=True) if v != getattr(baseline, k)}
            if len(knobs) > 1 and not out_of_budget():
                run(knobs, "grid")
    result = SweepResult(baseline, metric, points, note)
    print(result)
    return result
