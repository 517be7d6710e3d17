"""ftlab: a fine-tuning lab for learners.

LoRA and 4-bit QLoRA supervised fine-tuning of TinyLlama-1.1B on a free T4, and of a tiny model that
ftlab builds itself on any CPU, offline. The public names below are imported lazily, so
``import ftlab`` and ``ftlab --help`` stay fast: torch, transformers, peft and trl load only when a
name that needs them is first used.
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_PUBLIC = {
    "setup": "ftlab.env",
    "Environment": "ftlab.env",
    "choose_precision": "ftlab.machine",
    "load_model": "ftlab.models.loading",
    "tiny_model": "ftlab.models.loading",
    "load_tokenizer": "ftlab.models.loading",
    "DEFAULT_MODEL": "ftlab.models.loading",
    "RoundConfig": "ftlab.config",
    "ConfigError": "ftlab.config",
    "PRESETS": "ftlab.config",
    "PreferenceConfig": "ftlab.config",
    "train_round": "ftlab.round.train",
    "train_preference_round": "ftlab.round.preference",
    "RoundResult": "ftlab.round.train",
    "lr_find": "ftlab.round.lr_finder",
    "Template": "ftlab.templates.template",
    "Chat": "ftlab.evaluation.chat",
    "Lab": "ftlab.lab.book",
    "plan": "ftlab.memory.estimate",
    "Plan": "ftlab.memory.estimate",
    "suggest": "ftlab.memory.suggestions",
    "save_adapter": "ftlab.export.adapter",
    "load_adapter": "ftlab.export.adapter",
    "merge_adapter": "ftlab.export.adapter",
    "push_to_hub": "ftlab.export.adapter",
    "compare_logits": "ftlab.export.adapter",
    "write_gguf": "ftlab.export.gguf",
}
# The packages and modules, in the order data flows through a round (the README's layout section).
_SUBMODULES = {"machine", "console", "files", "distributed", "data", "templates", "models", "config", "memory",
               "round", "evaluation", "lab", "export", "course", "env", "configfile", "cli"}
# Where the modules of ftlab 0.1's flat layout live now: ``ftlab.generate`` still finds generation, and so on.
# Not listed in ``__all__``; the course and the README use the new paths.
_MOVED = {
    "generate": "ftlab.evaluation.generation", "metrics": "ftlab.evaluation.metrics",
    "chat": "ftlab.evaluation.chat", "sanity": "ftlab.evaluation.before_training",
    "masks": "ftlab.templates.masks", "tiny": "ftlab.models.tiny", "gguf_models": "ftlab.models.smollm2",
    "quant": "ftlab.course.by_hand.nf4", "lora_by_hand": "ftlab.course.by_hand.lora",
    "planner": "ftlab.memory.estimate", "sizes": "ftlab.memory.shapes", "suggestions": "ftlab.memory.suggestions",
    "train": "ftlab.round.train", "batches": "ftlab.round.useful_tokens", "same_weights": "ftlab.round.shared_base",
    "progress": "ftlab.round.progress", "tune": "ftlab.round.lr_finder",
    "sweeps": "ftlab.lab.sweeps", "widgets": "ftlab.lab.widgets", "side_by_side": "ftlab.lab.answers_and_curves",
    "merge": "ftlab.export.merge", "gguf_export": "ftlab.export.gguf", "streamed": "ftlab.files.safetensors",
    "cache": "ftlab.files.cache", "quiet": "ftlab.console.lines", "hub": "ftlab.machine", "presets": "ftlab.config",
    "checks": "ftlab.course.checks", "exercises": "ftlab.course.exercises", "demo": "ftlab.course.demo",
    "install": "ftlab.course.install", "renderings": "ftlab.course.renderings",
}

__all__ = sorted([*_PUBLIC, *_SUBMODULES, "__version__"])


def __getattr__(name: str):
    if name == "__version__":  # written once, in ftlab.machine beside the learning stack's versions
        return importlib.import_module("ftlab.machine").VERSION
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"ftlab.{name}")
    elif name in _MOVED:
        value = importlib.import_module(_MOVED[name])
    else:
        raise AttributeError(f"module 'ftlab' has no attribute {name!r}")
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__():
    return __all__
