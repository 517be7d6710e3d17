"""Drift test: every keyword ftlab passes to trl, transformers and peft exists in the installed versions.

Tutorials rot when a library renames an argument (``tokenizer=`` -> ``processing_class=``,
``max_seq_length`` -> ``max_length``, ``torch_dtype`` -> ``dtype``). This reads ftlab's own source,
finds each call into those libraries, and checks its keywords against the installed signatures, so
an upgrade that renames one fails here, in CI, before a learner's notebook breaks.
"""

import ast
import contextlib
import dataclasses
import inspect
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "ftlab"


def accepted(target) -> set[str]:
    if dataclasses.is_dataclass(target):
        return {f.name for f in dataclasses.fields(target)}
    return set(inspect.signature(target).parameters)


def from_pretrained_keywords() -> set[str]:
    from peft import PeftModel
    from transformers import PreTrainedModel

    source = inspect.getsource(PreTrainedModel.from_pretrained)
    popped = {node.args[0].value for node in ast.walk(ast.parse(source.strip().replace("\n    ", "\n")))
              if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "pop" and node.args
              and isinstance(node.args[0], ast.Constant)}
    # and an adapter put back on a model: PeftModel.from_pretrained(model, folder, is_trainable=...)
    return accepted(PreTrainedModel.from_pretrained) | popped | accepted(PeftModel.from_pretrained)


def targets() -> dict[str, set[str]]:
    import torch  # noqa: F401  (peft and trl expect torch imported first)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        BitsAndBytesConfig,
        GenerationConfig,
        GenerationMixin,
        LlamaConfig,
        PreTrainedTokenizerBase,
    )
    from trl import SFTConfig, SFTTrainer

    return {
        "SFTConfig": accepted(SFTConfig),
        "SFTTrainer": accepted(SFTTrainer.__init__),
        "LoraConfig": accepted(LoraConfig),
        "get_peft_model": accepted(get_peft_model),
        "prepare_model_for_kbit_training": accepted(prepare_model_for_kbit_training),
        "BitsAndBytesConfig": accepted(BitsAndBytesConfig.__init__),
        "LlamaConfig": accepted(LlamaConfig) | set(vars(LlamaConfig()).keys()),
        "from_pretrained": from_pretrained_keywords(),
        "apply_chat_template": accepted(PreTrainedTokenizerBase.apply_chat_template),
        # GenerationConfig's fields, and generate's own arguments (streamer=, logits_processor=, ...)
        "generate": set(vars(GenerationConfig()).keys()) | {"input_ids", "attention_mask"} | accepted(GenerationMixin.generate),
    }


METHODS = {"from_pretrained", "generate", "apply_chat_template"}  # called on an object: model.generate(...)


def call_name(node: ast.Call) -> str | None:
    """The library name a call reaches; a bare ``generate(...)`` is ftlab's own function, not the model's."""
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    name = getattr(node.func, "id", None)
    return None if name in METHODS else name


def calls_in_ftlab() -> list[tuple[str, str, int, set[str]]]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = call_name(node)
                keywords = {k.arg for k in node.keywords if k.arg is not None}
                found.append((name, path.name, node.lineno, keywords))
    return found


def unknown_keywords(calls, known) -> tuple[list[str], set[str]]:
    checked, unknown = set(), []
    for name, file, line, keywords in calls:
        if name in known:
            checked.add(name)
            unknown += [f"{file}:{line} {name}({k}=...)" for k in sorted(keywords - known[name])]
    return unknown, checked


def test_every_keyword_ftlab_passes_exists_in_the_installed_libraries():
    unknown, checked = unknown_keywords(calls_in_ftlab(), targets())
    assert not unknown, "keywords the installed libraries do not accept:\n" + "\n".join(unknown)
    # the scan must really see ftlab's calls, or this test would pass vacuously
    assert checked >= {"SFTConfig", "SFTTrainer", "LoraConfig", "BitsAndBytesConfig", "from_pretrained",
                       "generate", "apply_chat_template", "prepare_model_for_kbit_training"}


@pytest.mark.parametrize("call", ["SFTConfig(max_seq_length=512)", "SFTTrainer(tokenizer=tok)",
                                  "AutoModelForCausalLM.from_pretrained(name, load_in_4bit=True)",
                                  "SFTConfig(evaluation_strategy='steps')"])
def test_the_drift_check_catches_the_renames_that_broke_tutorials(call):
    node = ast.parse(call).body[0].value
    name = call_name(node)
    unknown, _ = unknown_keywords([(name, "tutorial.py", 1, {k.arg for k in node.keywords})], targets())
    assert len(unknown) == 1


def test_generation_presets_use_settings_transformers_knows():
    # the presets reach model.generate through ** and so escape the scan above
    from ftlab.evaluation.generation import DECODING, FTLAB_OPTIONS

    known = targets()["generate"]
    assert not FTLAB_OPTIONS & known  # ftlab's own options are turned into processors, never passed on by name
    for name, settings in DECODING.items():
        assert set(settings) - FTLAB_OPTIONS <= known, (name, set(settings) - known)


# ------------------------------------------------------------------------------------------ option values
def test_the_option_values_ftlab_offers_exist_in_the_installed_libraries():
    """Every optimiser, scheduler and tracker RoundConfig accepts is one transformers knows by that name."""
    import peft
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    from ftlab import config

    assert set(config.OPTIMIZERS) <= {o.value for o in OptimizerNames}
    assert set(config.SCHEDULERS) <= {s.value for s in SchedulerType}
    assert set(config.REPORT_TO) - {"none"} <= set(INTEGRATION_TO_CALLBACK)
    lora = config.RoundConfig().lora_config()  # bias and task type as PEFT names them
    assert lora.bias in ("none", "all", "lora_only") and lora.task_type in {t.value for t in peft.TaskType}
    # and each reaches the trainer as it is (a value SFTConfig refused would raise here)
    for optim in config.OPTIMIZERS:
        assert config.RoundConfig(optim=optim).sft_config("/tmp/x", "fp32", False, on_gpu=True).optim == optim
    for scheduler in config.SCHEDULERS:
        assert config.RoundConfig(lr_scheduler_type=scheduler).sft_config("/tmp/x", "fp32", False).lr_scheduler_type


# ------------------------------------------------------------------------------------------ deprecated keywords
def deprecated_mentions(module_names) -> dict[str, str]:
    """Keyword names the libraries' own source calls deprecated: a quoted name on a line that says
    "deprecat", or on the line after such a comment (transformers 5 converts ``additional_special_tokens``
    silently, with only a comment saying it is deprecated)."""
    import importlib
    import re

    found = {}
    for module_name in module_names:
        lines = Path(importlib.import_module(module_name).__file__).read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            context = " ".join(lines[max(0, i - 1):i + 1]).lower()
            if "deprecat" in context:
                for name in re.findall(r"[\"']([a-z_][a-z0-9_]+)[\"']", line):
                    found.setdefault(name, f"{module_name}:{i + 1}")
    return found


def deprecated_fields(*dataclasses_) -> set[str]:
    return {f.name for cls in dataclasses_ for f in dataclasses.fields(cls)
            if "deprecat" in str(f.metadata.get("help", "")).lower()}


DEPRECATION_SOURCES = {  # call -> library modules whose source says which keywords are deprecated
    "PreTrainedTokenizerFast": ["transformers.tokenization_utils_base", "transformers.tokenization_utils_tokenizers"],
    "from_pretrained": ["transformers.modeling_utils", "transformers.tokenization_utils_base"],
    "apply_chat_template": ["transformers.tokenization_utils_base"],
    "SFTTrainer": ["trl.trainer.sft_trainer", "transformers.trainer"],
    "get_peft_model": ["peft.mapping_func"],
    "load_dataset": ["datasets.load"],
}
# Known and owned elsewhere, each naming who fixes it: (file, keyword) -> who. Tolerated, not required, so a
# fix never fails this test. (tiny.py's additional_special_tokens was one; it passes extra_special_tokens now.)
KNOWN: dict[tuple[str, str], str] = {}


def deprecated_keywords_ftlab_passes(calls) -> list[str]:
    from transformers import GenerationConfig, TrainingArguments
    from trl import SFTConfig

    by_call = {name: deprecated_mentions(modules) for name, modules in DEPRECATION_SOURCES.items()}
    by_call["SFTConfig"] = dict.fromkeys(deprecated_fields(SFTConfig, TrainingArguments), "field help")
    by_call["generate"] = dict.fromkeys(deprecated_fields(GenerationConfig) if dataclasses.is_dataclass(
        GenerationConfig) else (), "field help")
    found = []
    for name, file, line, keywords in calls:
        for keyword in sorted(keywords & set(by_call.get(name, {}))):
            if (file, keyword) not in KNOWN:
                found.append(f"{file}:{line} {name}({keyword}=...): deprecated ({by_call[name][keyword]})")
    return found


def test_ftlab_passes_no_keyword_its_libraries_call_deprecated():
    found = deprecated_keywords_ftlab_passes(calls_in_ftlab())
    assert not found, "\n".join(found)


@pytest.mark.parametrize("call", ["PreTrainedTokenizerFast(tokenizer_object=bpe, additional_special_tokens=tags)",
                                  "SFTConfig(gradient_checkpointing=True)"])
def test_the_deprecation_check_catches_known_deprecations(call):
    node = ast.parse(call).body[0].value
    found = deprecated_keywords_ftlab_passes([(call_name(node), "new.py", 1, {k.arg for k in node.keywords})])
    assert len(found) == 1, found


# ------------------------------------------------------------------------------------------ warnings at run time
# Others' warnings, named one by one: raised inside a library while ftlab is on the stack, about nothing
# ftlab passes. Everything else a FutureWarning or DeprecationWarning says fails the test.
OTHERS = {
    "`torch.jit.script_method` is deprecated": "torch, imported lazily inside transformers' Trainer",
}


@contextlib.contextmanager
def listening():
    """Every FutureWarning and DeprecationWarning, and every "deprecated" log line of the four libraries
    (transformers says ``torch_dtype`` is deprecated through its logger), heard while ftlab is on the stack."""
    import logging
    import traceback
    import warnings

    heard = []

    def ours():
        return [f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_stack() if f"{SOURCE}/" in f.filename]

    def record(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DeprecationWarning | FutureWarning) and ours():
            heard.append((category.__name__, str(message), filename, ours()[-1]))

    class Deprecations(logging.Handler):
        def emit(self, entry):
            if "deprecat" in entry.getMessage().lower() and ours():
                heard.append(("log", entry.getMessage(), entry.name, ours()[-1]))

    handler, loggers = Deprecations(logging.WARNING), [logging.getLogger(n) for n in ("transformers", "trl",
                                                                                      "peft", "datasets")]
    once = getattr(logging.Logger, "warning_once", None)  # transformers says some things once per process
    if hasattr(once, "cache_clear"):
        once.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        for logger in loggers:
            logger.addHandler(handler)
        try:
            yield heard
        finally:
            for logger in loggers:
                logger.removeHandler(handler)


def test_the_listener_hears_deprecations_said_either_way(tiny_path):
    import torch
    from transformers import AutoModelForCausalLM

    with listening() as heard:
        AutoModelForCausalLM.from_pretrained(str(tiny_path), torch_dtype=torch.float32)  # said through the logger
    assert heard == []  # not ftlab's call: nothing of ftlab on the stack
    from trl import SFTConfig

    # a call written in ftlab's source (compiled under its file name) that passes a renamed keyword
    old_style = compile("SFTConfig(output_dir='/tmp/x', gradient_checkpointing=True, use_cpu=True, bf16=False)",
                        str(SOURCE / "config.py"), "exec")
    with listening() as heard:
        exec(old_style, {"SFTConfig": SFTConfig})
    assert any("gradient_checkpointing" in text for _, text, _, _ in heard), heard
    old_style = compile("AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)",
                        str(SOURCE / "models.py"), "exec")
    with listening() as heard:
        exec(old_style, {"AutoModelForCausalLM": AutoModelForCausalLM, "torch": torch, "path": str(tiny_path)})
    assert any(kind == "log" and "torch_dtype" in text for kind, text, _, _ in heard), heard


def test_ftlab_calls_raise_no_deprecation_warning(tiny_path, greet_data, tmp_path):
    """One of each of ftlab's calls into trl, transformers, peft and datasets, every warning recorded."""
    import ftlab
    from ftlab.config import RoundConfig
    from ftlab.data import instructions
    from ftlab.models import tiny

    train, evaluation = greet_data
    with listening() as heard:
        tiny.build_tokenizer(instructions(20, "greet_politely", seed=1))
        model, tokenizer = ftlab.tiny_model(path=tiny_path)
        config = RoundConfig.preset("cpu-tiny", max_steps=2, eval_steps=1, logging_steps=1)
        result = ftlab.train_round(config, model, tokenizer, train[:32], evaluation, output_dir=str(tmp_path / "a"))
        ftlab.evaluation.answers(result.model, tokenizer, ["Hello"], max_new_tokens=4)
        ftlab.evaluation.perplexity(result.model, tokenizer, evaluation)
        ftlab.data.load(train[:8], quiet=True)
        model, tokenizer = ftlab.tiny_model(quantization="4bit", path=tiny_path)
        ftlab.train_round(RoundConfig.preset("cpu-tiny", max_steps=1, quantization="4bit"), model, tokenizer,
                          train[:16], output_dir=str(tmp_path / "b"))
    unexpected = [h for h in heard if not any(known in h[1] for known in OTHERS)]
    assert not unexpected, "\n".join(f"{c} at {where} (raised in {file}): {text}" for c, text, file, where in unexpected)


# ------------------------------------------------------------------------------------------ version floors
def test_the_lowest_versions_pyproject_admits_are_the_tested_ones():
    """CI installs constraints.txt; for the libraries ftlab calls into, pyproject admits nothing older."""
    import re
    import tomllib
    from importlib import metadata

    root = SOURCE.parent
    floors = {}
    for requirement in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]:
        found = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", requirement)
        if found:
            floors[found[1].lower()] = found[2]
    tested = dict(line.split("==") for line in (root / "constraints.txt").read_text().split()
                  if "==" in line and not line.startswith("#"))

    def release(version):
        return tuple(int(x) for x in re.findall(r"\d+", version)[:3])

    for package in ("transformers", "trl", "peft", "datasets", "accelerate"):
        assert release(floors[package]) == release(tested[package])[:len(release(floors[package]))], (
            f"{package}: pyproject admits >={floors[package]} but CI tests {tested[package]}")
        assert release(metadata.version(package)) >= release(floors[package])
