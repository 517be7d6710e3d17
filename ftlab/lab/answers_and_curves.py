"""Rounds side by side beyond the table: their answers to one prompt, and their curves on a fair axis.

``answers`` asks one prompt of the base model and of each chosen round, from the one base model
already in memory: each round's adapter (kept by the lab in ``round-NNN/adapter``) is loaded onto a
new module tree over the same weights and switched in turn, so a T4 holds one TinyLlama, and the
model you pass never gets LoRA layers. Every column decodes the same way (greedy by default), each
round through the template it was trained with.

``plot_curves`` overlays train-loss curves by optimiser step, or by input tokens seen when the
rounds' batch sizes differ: a step of 16 rows sees twice the text of a step of 8, so by step the
bigger batch looks like it learns faster when it has only read more.
"""

from __future__ import annotations

import gc
import html

from ftlab.evaluation.generation import generate
from ftlab.lab.materials import base_model_name, recorded_template
from ftlab.round.shared_base import over_same_weights

TOKENS = "num_input_tokens_seen"  # what the trainer logs with include_num_input_tokens_seen (padding excluded)


# ------------------------------------------------------------------------------------------ curves
def tokens_per_step_differ(rounds) -> bool:
    """Whether a step means a different amount of text in these rounds: batch size x accumulation, or length."""
    knobs = {(r.record.get("effective_batch_size", r.config.effective_batch_size), r.config.max_length,
              r.config.packing) for r in rounds}  # the record's counts the processes of a DDP round too
    return len(knobs) > 1


def curve(round_, key: str = "loss", by: str = "step") -> tuple[list, list]:
    """``key`` against the optimiser step, or against the input tokens seen (``by="tokens"``) where logged."""
    if by == "step":
        return round_.curve(key)
    if by != "tokens":
        raise ValueError(f"by must be 'step' or 'tokens', not {by!r}")
    points = [(line[TOKENS], line[key]) for line in round_.logs()
              if isinstance(line.get(key), int | float) and isinstance(line.get(TOKENS), int | float)]
    return [t for t, _ in points], [v for _, v in points]


def plot_curves(rounds, ax=None, by: str | None = None, key: str = "loss"):
    """Overlay the rounds' ``key`` curves; ``by`` None picks tokens seen when the batch sizes differ.

    Rounds recorded before ftlab logged tokens seen fall back to steps, and the title says so.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    wanted = by or ("tokens" if tokens_per_step_differ(rounds) else "step")
    unlogged = [r.id for r in rounds if wanted == "tokens" and not curve(r, key, "tokens")[0] and curve(r, key)[0]]
    used = "step" if unlogged else wanted
    for r in rounds:
        line, = ax.plot(*curve(r, key, used), label=f"round {r.id}" + (f" ({r.name})" if r.name else ""))
        if key == "loss" and curve(r, "eval_loss", used)[0]:  # eval loss dashed, in the round's colour
            ax.plot(*curve(r, "eval_loss", used), "o--", color=line.get_color(), label=f"round {r.id} eval loss")
    ax.set_xlabel("input tokens seen (padding excluded)" if used == "tokens" else "optimiser step")
    ax.set_ylabel(key.replace("_", " "))
    why = {"tokens": " (batch sizes differ)" if by is None else "", "step": ""}[used]
    ax.set_title(f"train {key} by {'tokens seen' if used == 'tokens' else 'step'}{why}"
                 + (f"\nrounds {unlogged} did not log tokens seen" if unlogged else ""), fontsize=10)
    if rounds:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


# ------------------------------------------------------------------------------------------ answers
def answers(lab, ids, model, tokenizer, prompt, max_new_tokens: int = 64, preset: str = "eval") -> dict:
    """{"base model": Generation, "round 3 (name)": Generation, ...}: one prompt, answered by the base
    and by each round in ``ids`` with its own adapter; a round without an adapter gets the reason instead.

    ``model`` must be the base the rounds were trained on (the lab's record says which); it is left as it was.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        raise ValueError("pass the base model (the one you gave lab.train), not a model with adapters: "
                         "each round's adapter is loaded here")
    here = base_model_name(str(getattr(model, "name_or_path", "") or ""))
    rounds = [lab.round(i) for i in ids]
    for r in rounds:
        if r.record.get("base_model") not in (here, None, ""):
            raise ValueError(f"round {r.id} was trained on {r.record['base_model']!r}, not on this model ({here!r}): "
                             f"load that model (ftlab.load_model({r.record['base_model']!r})) to hear its answers")

    def ask(m, template=None):
        return generate(m, tokenizer, [prompt], preset, max_new_tokens, progress=False, template=template)[0]

    said = {"base model": ask(model)}
    tuned, switched = over_same_weights(model), None  # a new tree over the same weights: model gets no LoRA layers
    try:
        for r in rounds:
            label = f"round {r.id}" + (f" ({r.name})" if r.name else "")
            if not (r.adapter_dir / "adapter_config.json").exists():
                said[label] = f"no adapter: the round is {r.status} ({'resume it first' if r.status == 'interrupted' else 'nothing was saved'})"
                continue
            name = f"round-{r.id}"
            if switched is None:
                switched = PeftModel.from_pretrained(tuned, str(r.adapter_dir), adapter_name=name)
            else:
                switched.load_adapter(str(r.adapter_dir), adapter_name=name)
            switched.set_adapter(name)
            said[label] = ask(switched, recorded_template(r, tokenizer))
    finally:
        del tuned, switched
        gc.collect()
    return said


def answers_html(prompt, said: dict) -> str:
    """The answers as an HTML table, one column per model, flags (did not stop, repetitive) under each."""
    cell = "vertical-align:top; text-align:left; white-space:pre-wrap; padding:4px 8px; max-width:28em"
    heads = "".join(f"<th style='{cell}'>{html.escape(label)}</th>" for label in said)
    texts = "".join(f"<td style='{cell}'>{html.escape(str(answer))}</td>" for answer in said.values())
    return (f"<p><b>Prompt:</b> {html.escape(str(prompt))}</p>"
            f"<table><thead><tr>{heads}</tr></thead><tbody><tr>{texts}</tr></tbody></table>")
