"""The sizes a memory plan starts from, read without loading any weights.

* ``model_shape(model)``: exact parameter counts of a causal LM, built from its config on PyTorch's
  ``meta`` device (shapes only, no memory, no download). TinyLlama-1.1B's config is known here, so
  planning for it needs no Hub.
* ``trl_loss()``: how the installed TRL computes the SFT loss, read from its source (the loss's memory
  depends on it: TRL 1.x never builds the full fp32 logits).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from ftlab.files.records import read_json
from ftlab.models import tiny
from ftlab.models.loading import DEFAULT_MODEL

TINYLLAMA = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
             "tie_word_embeddings": False, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5}
# the Hub ids whose config is TinyLlama's, read without a download (the course's model, DEFAULT_MODEL, among them)
KNOWN_CONFIGS = {"TinyLlama/TinyLlama-1.1B-Chat-v1.0": TINYLLAMA, "TinyLlama/TinyLlama_v1.1": TINYLLAMA,
                 "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": TINYLLAMA}
GIB = 2**30


class PlanInputError(ValueError):
    """An input the planner cannot use; the message says what it accepts instead."""


@dataclass(frozen=True)
class ModelShape:
    """A model's sizes. ``linears``: (name, in_features, out_features, how many) of the decoder layers."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    total_params: int
    linears: tuple[tuple[str, int, int, int], ...]
    lm_head_params: int  # a plain linear layer that bitsandbytes leaves unquantized

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def linear_params(self) -> int:
        """Parameters of the decoder layers' linear layers: what 4-bit quantization compresses."""
        return sum(i * o * n for _, i, o, n in self.linears)

    @property
    def other_params(self) -> int:
        """Embeddings, norms and the lm_head: they stay in fp16 (fp32 after prepare_model_for_kbit_training)."""
        return self.total_params - self.linear_params

    def lora_params(self, r: int, targets) -> int:
        """Trainable LoRA parameters: r x (in + out) for every targeted linear layer."""
        names = {name for name, *_ in self.linears}
        targets = sorted(names) if targets in ("all-linear", ["all-linear"]) else list(targets)
        missing = [t for t in targets if t not in names]
        if missing:
            raise PlanInputError(f"{self.name} has no linear layer named {missing}; it has {sorted(names)}")
        return sum(r * (i + o) * n for name, i, o, n in self.linears if name in targets)


def _read_config(model):
    """A transformers config from a known name, a folder or config.json path, a dict, a config or a model."""
    from transformers import AutoConfig, PretrainedConfig

    if hasattr(model, "config") and isinstance(model.config, PretrainedConfig):
        return model.config, type(model).__name__
    if isinstance(model, PretrainedConfig):
        return model, model.model_type
    if isinstance(model, dict):
        values = dict(model)
        config = AutoConfig.for_model(values.pop("model_type", "llama"), **values)
        return _complete(config, model, "the config dict"), "config"
    name = str(model)
    if name in KNOWN_CONFIGS:
        known = dict(KNOWN_CONFIGS[name])
        return AutoConfig.for_model(known.pop("model_type"), **known), name
    if name == "tiny":
        name = str(tiny.cache_dir())
        if not (Path(name) / "config.json").exists():
            raise PlanInputError("ftlab's tiny model is not built yet: run ftlab.tiny_model() once, then plan")
    path = Path(name)
    file = path / "config.json" if path.is_dir() else path
    if not file.exists():
        raise PlanInputError(f"cannot read a model config at {file}: no such file. Give a folder holding "
                             f"config.json, the path of a config.json, a transformers config, or one of the "
                             f"known names {sorted(KNOWN_CONFIGS)}")
    given = read_json(file, "It must be a model's config.json (the one transformers saves beside the weights).")
    values = dict(given)
    if "model_type" not in values:
        raise PlanInputError(f"{file} has no model_type, so it is not a transformers config.json; give the "
                             "config.json saved beside a model's weights")
    try:
        config = AutoConfig.for_model(values.pop("model_type"), **values)
    except (ValueError, KeyError, TypeError) as error:
        raise PlanInputError(f"cannot read the model config {file}: {error}. It must be a transformers "
                             "config.json with a model_type") from error
    return _complete(config, given, str(file)), path.name


SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def _complete(config, given: dict, source: str):
    """``config``, refused when ``given`` (what the learner gave) lacks a size the plan counts: transformers
    would fill it with its default (a 7B Llama's), and the plan would be of a model nobody asked for."""
    text, values = config.get_text_config(), given.get("text_config") or given
    aliases = getattr(type(text), "attribute_map", {}) or {}
    accepted = inspect.signature(type(text).__init__).parameters
    missing = [name for name in SIZES if name not in values and aliases.get(name) not in values
               and (name in accepted or aliases.get(name) in accepted)]
    if missing:
        defaults = ", ".join(f"{name}={getattr(text, name, None)}" for name in missing)
        raise PlanInputError(f"{source} gives no {', '.join(missing)}: transformers would fill in its own defaults "
                             f"({defaults}) and the plan would be of another model. Give the model's whole config "
                             "(its config.json, or the folder holding it)")
    return config


def model_shape(model=DEFAULT_MODEL) -> ModelShape:
    """Exact sizes of ``model`` from its config, counted on the meta device (no weights, no download)."""
    if isinstance(model, ModelShape):
        return model
    import torch
    from transformers import AutoModelForCausalLM

    config, name = _read_config(model)
    key = (name, config.to_json_string(use_diff=False))
    if key in _SHAPES:
        return _SHAPES[key]
    with torch.device("meta"):
        built = AutoModelForCausalLM.from_config(config)
    counts: dict[tuple[str, int, int], int] = {}
    lm_head = built.get_output_embeddings()
    for full_name, module in built.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not lm_head:
            key = (full_name.rsplit(".", 1)[-1], module.in_features, module.out_features)
            counts[key] = counts.get(key, 0) + 1
    text = config.get_text_config()
    _SHAPES[key] = ModelShape(
        name=name, hidden=text.hidden_size, intermediate=text.intermediate_size, layers=text.num_hidden_layers,
        heads=text.num_attention_heads, kv_heads=getattr(text, "num_key_value_heads", None) or text.num_attention_heads,
        vocab=text.vocab_size, total_params=sum(p.numel() for p in built.parameters()),
        linears=tuple((n, i, o, c) for (n, i, o), c in counts.items()),
        lm_head_params=0 if lm_head is None or text.tie_word_embeddings else lm_head.weight.numel())
    return _SHAPES[key]


_SHAPES: dict = {}  # counting on the meta device takes a second for a 1B model: once per config


# ------------------------------------------------------------------------------------- TRL's loss
@dataclass(frozen=True)
class LossImplementation:
    kind: str  # "chunked" (TRL >= 1.x fused LM head) or "full" (fp32 logits of the whole batch)
    token_chunk: int = 0
    vocab_chunk: int = 0
    source: str = ""


@lru_cache(maxsize=1)
def trl_loss() -> LossImplementation:
    """Read the installed TRL's SFT loss from its source (importing TRL takes seconds; reading does not)."""
    spec = find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return LossImplementation("full", source="TRL not installed: assuming full logits")
    root = Path(spec.submodule_search_locations[0])

    def read(relative):
        file = root / relative
        return file.read_text() if file.exists() else ""

    trainer, utils, kernel = read("trainer/sft_trainer.py"), read("trainer/utils.py"), read("kernels/chunked_logprob.py")
    vocab = re.search(r"^_CHUNKED_LOGPROB_CHUNK_SIZE\s*=\s*(\d+)", utils, re.M)
    tokens = re.search(r"^TOKEN_CHUNK_SIZE\s*=\s*(\d+)", kernel, re.M)
    if "add_fused_lm_head(" in trainer and vocab and tokens:
        return LossImplementation("chunked", int(tokens.group(1)), int(vocab.group(1)),
                                  f"{root.name}/trainer/sft_trainer.py: fused LM head, chunked log-probs")
    return LossImplementation("full", source=f"{root}: no chunked loss found, assuming full fp32 logits")
