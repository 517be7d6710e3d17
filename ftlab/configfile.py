"""A round described in a YAML file, for ``ftlab train CONFIG.yaml``: read strictly, then trained in the lab.

The file holds the knobs of ``ftlab.RoundConfig`` at the top level, under the same names as in the
notebooks, and the round's materials beside them::

    preset: cpu-tiny            # the knobs to start from (ftlab.config.presets()); default: this machine's
    model: tiny                 # "tiny", a Hub id, a saved model's folder or a .gguf file
    train: data/train.jsonl     # anything ftlab.data.load reads, or "demo" (ftlab demo's task)
    eval: data/eval.jsonl       # optional
    template: chat              # chat (the model's own format), alpaca, or a chat template file (.jinja)
    lab: lab                    # the lab folder (default: ftlab.Lab.default())
    name: first round           # the round's name in the lab (optional; notes: too)
    learning_rate: 1e-3         # any RoundConfig knob
    max_steps: 60

A relative path is read from the config file's folder, wherever the command runs (a config travels
with its data). Every mistake is refused before anything is loaded, naming the file, the line, the key,
the value and what is allowed; a misspelt key names the nearest valid one. ``1e-3`` is read as a number
(YAML 1.1 alone would read it as text).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ftlab.config import PRESETS, ConfigError, RoundConfig, preset_for
from ftlab.distributed import main_first
from ftlab.files.faults import describe
from ftlab.files.records import read_text
from ftlab.lab.book import Lab
from ftlab.lab.materials import RoundInputs
from ftlab.machine import gpu_decides
from ftlab.models.loading import load_model
from ftlab.templates.template import Template

MATERIALS = {
    "preset": "the preset whose knobs the file starts from",
    "model": "'tiny', a Hub id, a saved model's folder or a .gguf file",
    "train": "training rows: a file ftlab.data.load reads (.jsonl, .json, .csv, .parquet) or 'demo'",
    "eval": "evaluation rows, like train (optional)",
    "template": "'chat', 'alpaca' or a chat template file (.jinja)",
    "lab": "the lab folder the round is recorded in",
    "name": "the round's name in the lab",
    "notes": "a note kept with the round",
}
KNOBS = tuple(f.name for f in dataclasses.fields(RoundConfig))
KEYS = (*MATERIALS, *KNOBS)
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".tsv", ".txt")


class ConfigFileError(ValueError):
    """A config file that cannot describe a round: the message names the file, the line and the key."""


@dataclass
class RunFile:
    """What a config file asked for: the round's knobs (checked) and its materials (paths resolved)."""

    path: Path
    config: RoundConfig
    preset: str
    model: str
    train: str
    eval: str | None = None
    template: str = "chat"
    lab: str | None = None
    name: str | None = None
    notes: str | None = None
    lines: dict = field(default_factory=dict, repr=False)  # key -> line number in the file

    def train_round(self, callbacks: list | None = None):
        """Load the model and data, and train the round in the lab; returns the lab's ``Round``."""
        from ftlab.course.demo import demo_data

        with main_first():  # under torchrun: built or downloaded once, then read by the other processes
            model, tokenizer = load_model(self.model, quantization=self.config.quantization)
        template = None
        if self.template == "alpaca":
            template = Template(tokenizer, "alpaca")
        elif self.template != "chat":  # a chat template file
            template = Template.chat(tokenizer, chat_template=read_text(self.template))
        demo = demo_data() if "demo" in (self.train, self.eval) else None
        train = demo[0] if self.train == "demo" else self.train
        eval = demo[1] if self.eval == "demo" else self.eval
        inputs = RoundInputs(model, tokenizer, train, eval, template, base_model=self.model)  # the rows read once, here
        lab = Lab(self.lab) if self.lab else Lab.default()
        return lab.train(self.config, inputs, name=self.name, notes=self.notes, callbacks=callbacks)


def read(path) -> RunFile:
    """Read and check ``path``; nothing heavy is imported or loaded here."""
    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"{path}: no such file (looked from {Path.cwd()})")
    values, lines = parse(path)
    where = _Where(path, lines)
    for key in values:
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(KEYS)}"
            where.fail(key, f"unknown key {key!r}: {hint}")
    for key in ("model", "train"):
        if key not in values:
            raise ConfigFileError(f"{path}: no {key!r} key; add a line `{key}: ...` ({MATERIALS[key]})")
    text = {}
    for key in MATERIALS:
        value = values.get(key)
        if value is not None and not isinstance(value, str) and not (key == "name" and isinstance(value, int)):
            where.fail(key, f"{key}: {value!r} is not text; it must be {MATERIALS[key]}")
        text[key] = None if value is None else str(value)
    preset = text["preset"] or default_preset(text["model"])
    if preset not in PRESETS:
        where.fail("preset", f"preset: {preset!r} is not a preset; choose one of {sorted(PRESETS)}")
    config = RoundConfig.preset(preset)
    for key in KNOBS:  # one knob at a time, so that a refusal points at its own line
        if key in values:
            try:
                setattr(config, key, values[key])
            except ConfigError as error:
                where.fail(key, str(error).removeprefix("RoundConfig."))
    template = text["template"] or "chat"
    if template not in ("chat", "alpaca"):
        template = where.existing("template", template, must_exist=True)
        read_text(template)  # a template file that is not UTF-8 is named here, by line, before anything loads
    train, eval = (where.data(key, text[key]) if text[key] else None for key in ("train", "eval"))
    if train and eval and train != "demo" and Path(train).exists() and Path(train).resolve() == Path(eval).resolve():
        where.fail("eval", f"eval: {text['eval']!r} is the train file too: its eval loss would be a training loss "
                           "(the model has seen every row). Hold rows out instead: train, eval = ftlab.data.split(rows, "
                           "eval_size=0.1) gives two sets with no prompt in both (chapter 01); save each to its "
                           "own file and name them here")
    model = text["model"]  # "tiny", a Hub id, or a path (from the config file's folder when relative)
    if model != "tiny" and ((path.parent / model).exists() or Path(model).suffix == ".gguf" or model.startswith(".")):
        model = where.existing("model", model, must_exist=False)
    lab = where.folder("lab", text["lab"]) if text["lab"] else None
    return RunFile(path, config, preset, model, train, eval, template, lab, text["name"], text["notes"], lines)


def parse(path: Path) -> tuple[dict, dict]:
    """The file's top-level keys with their values and line numbers; duplicate keys refused (YAML keeps the last)."""
    text = read_text(path)
    try:
        node = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigFileError(f"{path}{where}: not valid YAML ({problem}); write one `key: value` per line") from None
    if node is None:
        raise ConfigFileError(f"{path}: the file is empty; write one `key: value` per line (model:, train:, ...)")
    if not isinstance(node, yaml.MappingNode):
        raise ConfigFileError(f"{path}, line {node.start_mark.line + 1}: expected `key: value` lines "
                              f"(model:, train:, learning_rate:, ...), found a {node.id}")
    loader, values, lines = Loader(""), {}, {}
    for key_node, value_node in node.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in lines:
            raise ConfigFileError(f"{path}, line {line}: key {key!r} is given twice (also line {lines[key]}); "
                                  "keep one")
        lines[key] = line
        values[key] = loader.construct_object(value_node, deep=True)
    return values, lines


def default_preset(model: str) -> str:
    """The preset ``ftlab.setup().preset_for(model)`` would choose, read without torch (nvidia-smi)."""
    return preset_for(model, has_gpu=gpu_decides())  # a T4 rehearsed on the CPU decides as a T4


class Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, which also reads ``1e-3`` and ``5E4`` as numbers (as YAML 1.2 does)."""


Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                             list("-+0123456789"))


class _Where:
    """Turns a problem with a key into an error naming the file and the key's line."""

    def __init__(self, path: Path, lines: dict):
        self.path, self.lines = path, lines

    def fail(self, key: str, message: str):
        line = self.lines.get(key)
        raise ConfigFileError(f"{self.path}{f', line {line}' if line else ''}: {message}")

    def existing(self, key: str, value: str, must_exist: bool) -> str:
        """``value`` as a path: a relative one is taken from the config file's folder."""
        path = self.path.parent / Path(value).expanduser()
        if must_exist and not path.exists():
            self.fail(key, f"{key}: {value!r}: no such file ({path}; a relative path is read from the config "
                           f"file's folder); it must be {MATERIALS[key]}")
        return str(path)

    def folder(self, key: str, value: str) -> str:
        """A folder ftlab writes in (which may not exist yet), never an existing file."""
        path = self.existing(key, value, must_exist=False)
        if Path(path).exists() and not Path(path).is_dir():
            self.fail(key, f"{key}: {value!r} is {describe(path)} ({path}), not a folder; it must be {MATERIALS[key]}, "
                           "a folder of its own (it is made if it does not exist)")
        return path

    def data(self, key: str, value: str) -> str:
        """A data file (which must exist), ``demo``, or a name ftlab.data.load looks up (e.g. a Hub data set)."""
        if value == "demo":
            return value
        if Path(value).suffix.lower() in DATA_SUFFIXES or (self.path.parent / value).exists():
            path = self.existing(key, value, must_exist=True)
            if Path(path).is_dir():
                self.fail(key, f"{key}: {value!r} is a folder ({path}); it must be {MATERIALS[key]}: name one of "
                               f"its files")
            return path
        return value
