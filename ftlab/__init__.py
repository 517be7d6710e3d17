"""ftlab: a fine-tuning lab for learners.

LoRA and 4-bit QLoRA supervised fine-tuning of TinyLlama-1.1B on a free T4, and of a tiny model that
ftlab builds itself on any CPU, offline. The public names below are imported lazily, so
``import ftlab`` and ``ftlab --help`` stay fast: torch, transformers, peft and trl load only when a
name that needs them is first used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "setup": "ftlab.env",
    "Environment": "ftlab.env",
    "choose_precision": "ftlab.env",
    "load_model": "ftlab.models",
    "tiny_model": "ftlab.models",
    "load_tokenizer": "ftlab.models",
    "DEFAULT_MODEL": "ftlab.presets",
    "RoundConfig": "ftlab.config",
    "ConfigError": "ftlab.config",
    "PRESETS": "ftlab.presets",
    "train_round": "ftlab.train",
    "RoundResult": "ftlab.train",
    "Chat": "ftlab.chat",
    "Template": "ftlab.templates",
    "Lab": "ftlab.lab",
    "plan": "ftlab.planner",  # the modules are not named like their functions: importing one would shadow it
    "Plan": "ftlab.planner",
    "suggest": "ftlab.suggestions",
    "lr_find": "ftlab.tune",
    "save_adapter": "ftlab.export",
    "load_adapter": "ftlab.export",
    "merge_adapter": "ftlab.export",
    "push_to_hub": "ftlab.export",
    "compare_logits": "ftlab.export",
    "write_gguf": "ftlab.gguf_export",
}
_SUBMODULES = {"env", "models", "config", "train", "data", "generate", "checks", "metrics", "cli", "tiny",
               "templates", "demo", "exercises", "evaluation",
               "lab", "quant", "planner", "sizes", "suggestions", "batches", "install", "tune", "sweeps", "widgets",
               "lora_by_hand", "sanity", "chat", "masks",
               "export", "merge", "streamed", "configfile", "distributed", "gguf_export",
               "side_by_side", "hub", "presets", "metric_inputs", "same_weights", "progress", "quiet"}

__all__ = sorted([*_PUBLIC, *_SUBMODULES, "__version__"])


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"ftlab.{name}")
    else:
        raise AttributeError(f"module 'ftlab' has no attribute {name!r}")
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__():
    return __all__
