"""Judging a round: perplexity on the answers, text metrics on generated answers, base versus tuned.

``perplexity`` is exp of the mean negative log-likelihood over exactly the tokens that carry loss in
training (the assistant's answers, end-of-turn token included), weighted by token; on plain texts every
token counts. The trainer's eval loss weighs differently: it takes each eval batch's mean over its
tokens and averages those means, weighted by the rows in each batch, so a short answer in a small
batch counts as much as many long ones. ``mean_nll(..., per="batch")`` computes the trainer's way;
the two agree when all eval rows fit in one batch (a test checks both facts). ``evaluate`` generates
an answer for every eval row with the training template, scores them (with the number of rows
scored, ``rows``), saves predictions and scores next to the adapter, and returns a tidy table.
``base_vs_tuned`` runs the same evaluation with the LoRA adapter switched off and on: one model in
memory, never a second copy on the GPU. ``discriminates`` says whether a tuned score lies strictly
between the base model's and a perfect one, so that the next round has room to move it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ftlab.console.lines import track
from ftlab.evaluation import metrics as text_metrics
from ftlab.evaluation.generation import generate
from ftlab.templates.template import Template

DEFAULT_METRICS = text_metrics.DEFAULT_SCORES


def _chat_rows(data) -> list[list[dict]]:
    if isinstance(data, dict) and "messages" in data:  # a Dataset slice such as eval[:4] is a dict of columns
        return list(data["messages"])
    rows = list(data)
    if rows and "messages" not in rows[0]:
        raise ValueError("evaluation needs chat rows ({'messages': [...]}); convert with ftlab.data.load first")
    return [row["messages"] for row in rows]


def _texts_or_chats(data) -> list:
    """Chat rows become lists of turns; plain texts (strings, or rows with a "text" field) stay strings."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):  # a Dataset slice such as eval[:4] is a dict of columns
        if "messages" in data or "text" in data:
            return list(data["messages"] if "messages" in data else data["text"])
    examples = []
    for number, row in enumerate(data, start=1):
        if isinstance(row, str):
            examples.append(row)
        elif isinstance(row, dict) and ("messages" in row or "text" in row):
            examples.append(row["messages"] if "messages" in row else row["text"])
        else:
            raise ValueError(f"row {number} is neither a chat row ({{'messages': [...]}}) nor a plain text (a string "
                             f"or {{'text': ...}}): {str(row)[:80]!r}")
    return examples


def _masked_batch(tokenizer, template, examples: list, max_length: int | None):
    """input_ids, attention mask and labels (-100 where no loss), right-padded.

    A chat row carries loss on its answers (as in training); a plain text on every token, with the
    BOS the tokenizer adds to any text.
    """
    import torch

    encoded = []
    for example in examples:
        if isinstance(example, str):
            ids = tokenizer(example, truncation=max_length is not None, max_length=max_length)["input_ids"]
            encoded.append((ids, [1] * len(ids)))
        else:
            encoded.append(template.encode(example, max_length))
    ids, masks = [e[0] for e in encoded], [e[1] for e in encoded]
    width = max(len(i) for i in ids)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
    attention = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    labels = torch.tensor([[t if m else -100 for t, m in zip(i, k, strict=True)] + [-100] * (width - len(i))
                           for i, k in zip(ids, masks, strict=True)])
    return input_ids, attention, labels


def mean_nll(model, tokenizer, data, batch_size: int = 8, max_length: int | None = 1024,
             template=None, per: str = "token") -> tuple[float, int]:
    """(mean negative log-likelihood, number of loss tokens): answers of chat rows, all tokens of plain texts.

    ``per="token"``: every loss token weighs the same. ``per="batch"``: the trainer's eval loss, the mean
    of each batch of ``batch_size`` rows (in order) weighted by its number of rows.
    """
    if per not in ("token", "batch"):
        raise ValueError(f"per must be 'token' or 'batch', not {per!r}")
    batches = _batch_nlls(model, tokenizer, data, batch_size, max_length, template)
    count = sum(tokens for _, tokens, _ in batches)
    if count == 0 or (per == "batch" and any(tokens == 0 for _, tokens, _ in batches)):
        raise ValueError(f"no token carries loss in this data{' (or in one batch of it)' if count else ''}: "
                         "every answer is empty or truncated away")
    if per == "token":
        return sum(total for total, _, _ in batches) / count, count
    rows = sum(n for _, _, n in batches)
    return sum(total / tokens * n for total, tokens, n in batches) / rows, count


def _batch_nlls(model, tokenizer, data, batch_size: int, max_length: int | None, template) -> list[tuple]:
    """(summed NLL, loss tokens, rows) of each batch of ``batch_size`` rows, in order."""
    import torch

    examples = _texts_or_chats(data)
    needs_template = any(not isinstance(example, str) for example in examples)
    template = template or (Template.chat(tokenizer) if needs_template else None)
    device = next(model.parameters()).device
    batches = []
    was_training = model.training
    model.eval()
    starts = range(0, len(examples), batch_size)
    try:
        for start in track(starts, "perplexity", unit="batches"):  # a line once it is worth showing
            chunk = examples[start:start + batch_size]
            input_ids, attention, labels = (t.to(device) for t in _masked_batch(tokenizer, template, chunk, max_length))
            with torch.no_grad():
                logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
            # position t predicts token t+1
            targets = labels[:, 1:]
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            keep = targets != -100
            picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            batches.append((-picked[keep].sum().item(), int(keep.sum()), len(chunk)))
    finally:
        model.train(was_training)
    return batches


def perplexity(model, tokenizer, data, batch_size: int = 8, max_length: int | None = 1024, template=None) -> float:
    """exp(mean NLL per token): 1 is perfect; a uniform guess over the vocabulary scores its size.

    It can exceed the vocabulary size: a model that is confidently wrong (most probability on other
    tokens) does worse than the uniform guess.

    ``data`` is chat rows (the answer tokens count, as in training) or plain texts, such as a held-out
    document (strings or ``{"text": ...}`` rows: every token counts but the first, which nothing predicts).
    """
    return math.exp(mean_nll(model, tokenizer, data, batch_size, max_length, template)[0])


@dataclass
class Evaluation:
    """Scores and per-row predictions of one evaluation."""

    scores: dict
    rows: list[dict] = field(repr=False)
    saved_to: str | None = None

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def show(self, n: int = 5) -> None:
        for name, value in self.scores.items():
            print(f"{name:<20} {value:.4f}" if isinstance(value, float) else f"{name:<20} {value}")
        for row in self.rows[:n]:
            print(f"\n  prompt:     {row['prompt']}\n  reference:  {row['reference']}\n  prediction: {row['prediction']}"
                  + ("" if row["stopped"] else "  [did not stop]") + ("  [repetitive]" if row["repetitive"] else ""))


def score(predictions: list[str], references: list[str], names=DEFAULT_METRICS, lang: str | None = None) -> dict:
    """The chosen text metrics as one flat dict, each from 0 to 1: ``ftlab.evaluation.metrics.score``."""
    return text_metrics.score(predictions, references, names, lang=lang)


def evaluate(model, tokenizer, data, metrics=DEFAULT_METRICS, output_dir: str | None = None,
             max_new_tokens: int = 64, lang: str | None = None, with_perplexity: bool = True,
             template=None) -> Evaluation:
    """Generate (greedy, with the training template) and score every row of ``data``; save next to the adapter."""
    rows = answer_rows(model, tokenizer, data, max_new_tokens, template)
    scores = score([r["prediction"] for r in rows], [r["reference"] for r in rows], metrics, lang)
    if with_perplexity:
        scores["perplexity"] = perplexity(model, tokenizer, data, template=template)
    scores["rows"] = len(rows)  # the sample size: with 40 rows one answer moves a share by 0.025
    scores["did_not_stop"] = sum(not r["stopped"] for r in rows) / len(rows)
    scores["repetitive"] = sum(r["repetitive"] for r in rows) / len(rows)
    result = Evaluation(scores, rows)
    if output_dir:
        result.saved_to = save(result, output_dir)
    return result


def answer_rows(model, tokenizer, data, max_new_tokens: int = 64, template=None,
                progress: bool | None = None) -> list[dict]:
    """Each chat row's prompt answered (greedy, with the training template) beside the row's own answer:
    ``{"prompt", "reference", "prediction", "stopped", "repetitive"}`` a row. What ``evaluate`` scores, and
    the sample answers a lab round records."""
    chats = _chat_rows(data)
    generations = generate(model, tokenizer, [chat[:-1] for chat in chats], "eval", max_new_tokens,
                           template=template, progress=progress)
    return [{"prompt": g.prompt, "reference": chat[-1]["content"], "prediction": g.text, "stopped": g.stopped,
             "repetitive": g.repetitive} for chat, g in zip(chats, generations, strict=True)]


def save(result: Evaluation, output_dir: str) -> str:
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "predictions.jsonl", "w", encoding="utf-8") as out:
        for row in result.rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    (folder / "scores.json").write_text(json.dumps(result.scores, indent=1))
    return str(folder)


def base_vs_tuned(peft_model, tokenizer, data, metrics=DEFAULT_METRICS, **options):
    """One table: each metric for the base model (adapter off) and the tuned one (adapter on)."""
    import pandas as pd

    if not hasattr(peft_model, "disable_adapter"):
        raise TypeError("base_vs_tuned needs the PeftModel from training (result.model), which can switch "
                        "its adapter off; a plain model has no adapter to compare")
    with peft_model.disable_adapter():
        base = evaluate(peft_model, tokenizer, data, metrics, **options)
    tuned = evaluate(peft_model, tokenizer, data, metrics, **options)
    table = pd.DataFrame({"base": base.scores, "tuned": tuned.scores})
    table["change"] = table["tuned"] - table["base"]
    return table, base, tuned


def discriminates(base: float, tuned: float, perfect: float = 1.0, tolerance: float = 0.02) -> bool:
    """True when ``tuned`` lies strictly between ``base`` and ``perfect``, more than ``tolerance`` from each.

    A metric that the base already maxes out, or that the tuned model maxes out, cannot tell the next
    round from this one. Works for scores that rise (F1, perfect 1) and losses that fall (perfect 0).
    """
    low, high = sorted((base, perfect))
    return low + tolerance < tuned < high - tolerance
