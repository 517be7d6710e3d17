"""Drift test: every keyword ftlab passes to trl, transformers and peft exists in the installed versions.

Tutorials rot when a library renames an argument (``tokenizer=`` -> ``processing_class=``,
``max_seq_length`` -> ``max_length``, ``torch_dtype`` -> ``dtype``). This reads ftlab's own source,
finds each call into those libraries, and checks its keywords against the installed signatures, so
an upgrade that renames one fails here, in CI, before a learner's notebook breaks.
"""

import ast
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
    from transformers import PreTrainedModel

    source = inspect.getsource(PreTrainedModel.from_pretrained)
    popped = {node.args[0].value for node in ast.walk(ast.parse(source.strip().replace("\n    ", "\n")))
              if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "pop" and node.args
              and isinstance(node.args[0], ast.Constant)}
    return accepted(PreTrainedModel.from_pretrained) | popped


def targets() -> dict[str, set[str]]:
    import torch  # noqa: F401  (peft and trl expect torch imported first)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig, GenerationConfig, LlamaConfig, PreTrainedTokenizerBase
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
        "generate": set(vars(GenerationConfig()).keys()) | {"input_ids", "attention_mask"},
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
    from ftlab.generate import PRESETS

    known = targets()["generate"]
    for name, settings in PRESETS.items():
        assert set(settings) <= known, (name, set(settings) - known)
