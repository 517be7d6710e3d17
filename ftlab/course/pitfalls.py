"""Pitfalls that ftlab prevents silently, made to strike once with the guard off, for the chapters to show.

Each function here reproduces one learner's pain from ``/work/shared/pitfalls.md`` with the library calls a
tutorial makes, so that a chapter can show the real error or the measured harm, then ftlab's call that
prevents it:

- ``pad_is_eos`` (pitfall 7, pad = eos): many models ship with the padding token equal to the end-of-sequence
  token (SmolLM2-135M-Instruct: both ``<|im_end|>``), and the usual collator
  (``transformers.DataCollatorForLanguageModeling``) masks the labels of every pad token. With pad = eos that
  masks every end-of-turn token too: no row teaches the model to stop. ``pad_is_eos(template)`` is a template
  whose loss mask is what that collator leaves; ``stop_taught`` counts the rows in which the end of the answer
  carries loss. ftlab's ``load_model`` gives the tokenizer a distinct pad token and its ``Template`` puts the
  end-of-turn token inside the loss.
- ``mixed_precision_step`` (pitfall 2, "Attempting to unscale FP16 gradients"): one training step as fp16
  mixed precision takes it on a T4 (fp16 autocast, a gradient scaler that unscales before clipping), computed
  by the CPU (``torch.autocast("cpu")`` and ``torch.amp.GradScaler("cpu")``, as ``ftlab.round.rehearsal`` does).
  With LoRA's weights left in fp16 (PEFT before 0.12 made them so on an fp16 model, TRL casts them to bf16 on a
  quantized one) torch's ``GradScaler.unscale_`` raises the ValueError learners meet; ftlab's
  ``keep_trainables_fp32``, which ``train_round`` calls, keeps them in fp32 and the step runs.
- ``QUOTED``: messages only a GPU, Colab or Kaggle shows (pitfalls 3 and 14), word for word, with where each comes
  from, for the chapters to quote; ``versions_against_tested`` is the guard against pitfall 3 that ftlab can show
  anywhere: the installed libraries beside the versions ftlab was tested with (its ``[tested]`` extra).
"""

from __future__ import annotations

import warnings
from importlib import metadata

from ftlab.round.shared_base import over_same_weights
from ftlab.round.train import keep_trainables_fp32
from ftlab.templates.template import Template

# Messages a learner meets where this machine cannot make them strike: name -> (where it comes from, the message)
QUOTED = {
    "bitsandbytes": ("bitsandbytes < 0.43 on a Colab image whose CUDA moved under a pinned install: raised at "
                     "`import bitsandbytes` (bitsandbytes/cextension.py)",
                     "RuntimeError:\n        CUDA Setup failed despite GPU being available. Please run the following "
                     "command to get more information:\n\n        python -m bitsandbytes"),
    "pip": ("pip, after an install cell pinned versions that no longer match the packages Colab preinstalls "
            "(pip's resolver, pip/_internal/commands/install.py)",
            "ERROR: pip's dependency resolver does not currently take into account all the packages that are "
            "installed. This behaviour is the source of the following dependency conflicts."),
    "wandb": ("wandb's login prompt, from wandb.init inside the Trainer: transformers < 5 reported to every installed "
              "tracker by default (report_to 'all'), and Kaggle preinstalls wandb",
              "wandb: (1) Create a W&B account\nwandb: (2) Use an existing W&B account\nwandb: (3) Don't visualize "
              "my results\nwandb: Enter your choice:"),
}


class _PadIsEos(Template):
    """A template whose loss mask drops every token equal to the tokenizer's pad token, taken to be eos."""

    def __init__(self, template: Template):
        self.__dict__.update(template.__dict__)
        self.pad_id = template.tokenizer.eos_token_id  # the pad token a pad = eos setup uses

    def __repr__(self) -> str:
        return f"pad_is_eos({super().__repr__()})"

    def _encode_rows(self, conversations, max_length=None, every_turn=False, first_row=None):
        rows = super()._encode_rows(conversations, max_length, every_turn, first_row)
        # what DataCollatorForLanguageModeling does: labels[input_ids == pad_token_id] = -100
        return [(ids, [0 if token == self.pad_id else carries for token, carries in zip(ids, mask, strict=True)],
                 ends) for ids, mask, ends in rows]


def pad_is_eos(template: Template) -> Template:
    """``template`` with the loss mask a pad = eos setup leaves: no loss on any eos token, the answer's end included.

    Pass it to ``ftlab.train_round(..., template=pad_is_eos(template))`` to train as such a setup does.
    """
    return _PadIsEos(template)


def stop_taught(template: Template, rows) -> float:
    """The share of ``rows`` in which the token that ends the answer carries loss (what teaches the model to stop)."""
    stops = set(template.stop_token_ids)
    taught = 0
    for row in rows:
        ids, mask = template.encode(row["messages"])
        taught += any(carries and token in stops for token, carries in zip(ids, mask, strict=True))
    return taught / len(rows)


def mixed_precision_step(model, tokenizer, rows, fp32_trainables: bool, r: int = 16) -> float:
    """One LoRA training step on ``rows`` as fp16 mixed precision takes it on a T4, run by the CPU; returns the loss.

    ``model``: loaded in fp16 (``ftlab.load_model(name, precision="fp16")``); it is left as it was (LoRA goes on a
    new module tree over the same weights). LoRA's weights are created in the model's fp16, as PEFT made them before
    0.12 and as TRL's cast leaves them on a quantized model. ``fp32_trainables=False`` steps with them as they are:
    the gradient scaler's ``unscale_`` raises ``ValueError("Attempting to unscale FP16 gradients.")``.
    ``fp32_trainables=True`` first calls ftlab's ``keep_trainables_fp32`` (what ``train_round`` does).
    """
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # PEFT asks transformers a deprecated question: not the learner's concern
        warnings.simplefilter("ignore", FutureWarning)
        tuned = get_peft_model(over_same_weights(model), config, autocast_adapter_dtype=False)
    if fp32_trainables:
        keep_trainables_fp32(tuned)
    template = Template.chat(tokenizer)
    encoded = [template.encode(row["messages"]) for row in rows]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in encoded])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in encoded])
    labels = torch.tensor([[t if m else -100 for t, m in zip(ids, mask, strict=True)] + [-100] * (width - len(ids))
                           for ids, mask in encoded])
    trainables = [p for p in tuned.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainables, lr=1e-4)
    scaler = torch.amp.GradScaler("cpu")
    with torch.autocast("cpu", dtype=torch.float16):
        loss = tuned(input_ids=input_ids, attention_mask=attention, labels=labels).loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # where the trainer unscales before clipping the gradients: the error strikes here
    torch.nn.utils.clip_grad_norm_(trainables, 1.0)
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def versions_against_tested() -> list[tuple[str, str | None, str]]:
    """``(package, installed version or None, version ftlab was tested with)`` for each pin of ftlab's ``[tested]``
    extra (empty where ftlab is not installed as a package)."""
    try:
        requires = metadata.requires("ftlab") or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for requirement in requires:
        pin, _, marker = requirement.partition(";")
        if "tested" not in marker or "==" not in pin:
            continue
        package, tested = (part.strip() for part in pin.split("=="))
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = None
        found.append((package, installed, tested))
    return found
