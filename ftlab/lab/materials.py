"""What a round is made of: its rows, its template's text, and its base model.

``Lab`` turns the data it is given into rows once, at its door (``at_the_door``), fingerprints them
(``ftlab.data.fingerprint``) and keeps a copy; the template is recorded as text so two rounds can be
told apart; the base model is recorded by name so ``lab.rerun`` and ``lab.resume`` can load it again
(``load_base``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.data import load
from ftlab.data.files import as_rows as rows_of
from ftlab.data.loading import Loaded
from ftlab.data.splits import fingerprint
from ftlab.lab.storage import read_jsonl
from ftlab.models import tiny
from ftlab.models.loading import load_model, tiny_model
from ftlab.templates.template import CHAT_TEMPLATE, Template


class Rows(list):
    """One split's rows as they came through the door (what is fingerprinted and kept), and ``dataset``:
    the same rows converted once by ``ftlab.data.load``, which ``train_round`` and the samples use."""

    dataset = None


def as_rows(rows) -> Rows:
    """A list of rows: a file or Hub id loaded strictly by ``ftlab.data.load`` (its Dataset kept); a list,
    Dataset or DataFrame through ``ftlab.data``'s one rows conversion (empty cells as None)."""
    if isinstance(rows, str | os.PathLike):
        dataset = load(rows, quiet=True)
        kept = Rows(dataset.to_list())
        kept.dataset = dataset
        return kept

    return Rows(rows_of(rows))


class Unreadable:
    """Data that could not be read at the lab's door: where it came from and the error, recorded with the round."""

    def __init__(self, source, error: Exception):
        self.source, self.error = str(source)[:300], error


def at_the_door(train, eval=None, strict: bool = False):
    """Each split as ``Rows``, converted once, here, and carried down to training, samples and the record.

    A file or Hub id is loaded strictly (``ftlab.data.load``): a bad row fails the round with the row
    named, instead of vanishing from the kept copy and its fingerprint. Rows given in memory are kept as
    given and converted strictly too (``converted``). Returns ``(train, eval, problem)``: a split that
    cannot be read comes back as ``Unreadable`` (``strict`` raises instead), and ``problem`` is the first
    error, which fails the round as a data failure.
    """
    rows, problem = [], None
    for split, given in (("train", train), ("eval", eval)):
        try:
            rows.append(None if given is None else as_rows(given))
        except Exception as error:  # noqa: BLE001 - recorded as the round's failure, with advice
            if strict:
                raise
            rows.append(Unreadable(given, error))
            problem = problem or error
            continue
        problem = problem or converted(rows[-1], split)
    return rows[0], rows[1], problem


def converted(rows: Rows | None, split: str) -> Exception | None:
    """Give ``rows`` its Dataset (converted and checked strictly by ``ftlab.data.load``) unless it has one,
    and return the error, if any. The rows stay as given, so a round that fails on its data still
    records (fingerprint, kept copy) what it was given."""
    if rows is None or rows.dataset is not None:
        return None
    try:
        rows.dataset = load(rows, file=split, quiet=True)
    except Exception as error:  # noqa: BLE001 - recorded as the round's failure, with advice
        return error
    return None


def loaded(rows):
    """What ``train_round`` takes: the split's Dataset, converted at the door, marked ``Loaded`` so that
    ``ftlab.data.load`` does not convert it again (None stays None)."""
    return rows if rows is None else Loaded(rows.dataset)


PROBE = [{"role": "user", "content": "{prompt}"}, {"role": "assistant", "content": "{answer}"}]


def template_text(tokenizer, template=None) -> tuple[str, str]:
    """The template's style and its text: the chat template's source, or a probe row rendered by it."""
    style = getattr(template, "style", "chat")
    if style == "chat":  # the template's own text: the tokenizer's, or one passed to Template.chat
        return style, getattr(template, "chat_template", None) or getattr(tokenizer, "chat_template", None) or ""
    return style, template.training_text(PROBE)


def is_ftlab_template(style: str, text: str) -> bool:
    return style == "chat" and text == CHAT_TEMPLATE


def base_model_name(path: str) -> str:
    """"tiny" for ftlab's tiny model (its cache path differs between machines), else the Hub id or path."""
    return "tiny" if path and Path(path).name == tiny.cache_dir().name else path


def load_base(record: dict, config):
    """Load the recorded base model again (ftlab's tiny model, a Hub id or a local folder)."""
    path = record.get("base_model_path")
    if record.get("base_model") == "tiny":
        where = path if path and (Path(path) / "config.json").exists() else None
        return tiny_model(quantization=config.quantization, path=where)
    return load_model(path or record["base_model"], quantization=config.quantization)


def recorded_materials(round_, model, tokenizer, train, eval):
    """Model, tokenizer, data and template of a recorded round: the ones given, else reloaded from the record."""
    if model is None:
        model, tokenizer = load_base(round_.record, round_.config)
    elif tokenizer is None:
        raise ValueError("pass the tokenizer with the model")
    recorded = round_.record.get("data", {})
    *rows, problem = at_the_door(train, eval, strict=True)
    given = dict(zip(("train", "eval"), rows, strict=True))
    for split, info in recorded.items():
        if given[split] is None:
            if not info.get("file"):
                raise ValueError(f"round {round_.id} did not keep its {split} data: pass {split}= ")
            given[split] = Rows(read_jsonl(round_.path / info["file"]))
            problem = problem or converted(given[split], split)
        elif info.get("fingerprint") and fingerprint(given[split]) != info["fingerprint"]:
            raise ValueError(f"this {split} data is not the data round {round_.id} used (fingerprints differ); "
                             "train a new round for new data")
    return model, tokenizer, given["train"], given["eval"], recorded_template(round_, tokenizer), problem


def recorded_template(round_, tokenizer):
    """The template a round was trained with, rebuilt from its record: ``Template(tokenizer, style)`` for
    Alpaca; for the chat style None (the tokenizer's own chat template, as ``train_round`` takes it) unless
    the round kept another chat template's text (``Template.chat(tokenizer, text)``), which is rebuilt."""
    info = round_.record.get("template") or {}
    style = info.get("style", "chat")
    if style != "chat":
        return Template(tokenizer, style)
    kept = round_.path / info["file"] if info.get("file") else None
    text = kept.read_text(encoding="utf-8") if kept is not None and kept.exists() else ""
    own = getattr(tokenizer, "chat_template", None) or ""
    return Template.chat(tokenizer, text) if text and text != own else None
