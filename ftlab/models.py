"""Loading models: TinyLlama-1.1B-Chat from the Hub (fp16, 4-bit or 8-bit), or ftlab's tiny model.

Both come back ready for the course: a pad token distinct from eos (when pad == eos the model never
learns to stop and rambles on), ftlab's chat template with ``{% generation %}`` markers (so the loss
falls on the answers only), and weights in the precision the GPU supports. The 4-bit path is QLoRA's:
NF4 with double quantisation, computing in fp16 on a T4 (bnb's fp32 default is slow there).
"""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.templates import CHAT_TEMPLATE

DEFAULT_MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
QUANTIZATIONS = (None, "4bit", "8bit")


class ModelNotAvailableError(RuntimeError):
    """The model cannot be loaded here (offline, or no such id); the message says what to do instead."""


def _torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def _check_reachable(name: str) -> None:
    """Fail in seconds, not after a minute of retries, when a Hub id cannot be fetched."""
    from ftlab.env import hub_online

    if Path(name).is_dir():
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return  # already in the local cache: loads offline
    except Exception:  # an id the cache helper rejects is reported below like any unreachable one
        pass
    if not hub_online():
        raise ModelNotAvailableError(
            f"Cannot load {name!r}: the Hugging Face Hub is not reachable here (offline, HF_HUB_OFFLINE=1, "
            "or Kaggle with internet off) and the model is not in the local cache. Use ftlab's offline "
            "model instead: model, tokenizer = ftlab.tiny_model()")


def prepare_tokenizer(tokenizer, model=None):
    """Give the tokenizer a pad token distinct from eos; keep its own chat template (ftlab's only if it has none)."""
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
            tokenizer.pad_token = tokenizer.unk_token  # Llama's <unk>: no new embedding row needed
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            if model is not None:
                model.resize_token_embeddings(len(tokenizer))
    if not tokenizer.chat_template:
        print("Note: this tokenizer has no chat template: ftlab gives it TinyLlama's format "
              "(ftlab.templates.CHAT_TEMPLATE), which the model must learn in fine-tuning.")
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "right"  # training pads on the right; ftlab.generate pads on the left
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def quantization_config(quantization: str | None, precision: str):
    """The ``BitsAndBytesConfig`` for ``"4bit"`` (QLoRA's NF4) or ``"8bit"``, or None."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of {QUANTIZATIONS}")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=_torch_dtype(precision))


def load_model(name: str = DEFAULT_MODEL, quantization: str | None = None, precision: str | None = None,
               device_map=None):
    """Load ``name`` (a Hub id, a local folder, or ``"tiny"``) and its tokenizer, ready to fine-tune.

    ``precision`` defaults to what the hardware supports (``ftlab.choose_precision``). On a GPU the
    whole model goes to ``cuda:0``: Kaggle's T4 x2 would otherwise split it and confuse the trainer.
    """
    from ftlab.env import choose_precision, gpu_info

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of {QUANTIZATIONS}")
    if name == "tiny":
        return tiny_model(quantization=quantization)
    _check_reachable(name)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    precision = precision or choose_precision(gpu_info()[2])
    if device_map is None and torch.cuda.is_available():
        device_map = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(
        name, dtype=_torch_dtype(precision), device_map=device_map,
        quantization_config=quantization_config(quantization, precision))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(name), model)
    _keep_4bit_trainable(model, quantization)
    return model, tokenizer


def tiny_model(quantization: str | None = None, path: str | os.PathLike | None = None, progress: bool = True):
    """ftlab's tiny offline model and tokenizer; built and pre-trained (~10 s) at first use, then cached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftlab import tiny

    path = Path(path or tiny.cache_dir())
    if not (path / "config.json").exists():
        tiny.build(path, progress=progress)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quantization_config(quantization, "fp32"))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path), model)
    _keep_4bit_trainable(model, quantization)
    return model, tokenizer


def _keep_4bit_trainable(model, quantization: str | None) -> None:
    """A 4-bit model must stay trainable after an evaluation or a generation on a CPU (ftlab.quant)."""
    if quantization == "4bit":
        from ftlab.quant import keep_4bit_trainable

        keep_4bit_trainable(model)
