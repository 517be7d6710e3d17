"""What a round is made of, held as one object: ``RoundInputs`` (model, tokenizer, rows, template, base model).

``Lab`` builds the inputs once, at its door: each split is read into rows, converted and fingerprinted
(``ftlab.data.fingerprint``) there (``at_the_door``), and the one object is carried down to training,
the sample answers and the record, which keeps a copy of the rows. The template is recorded as text so
two rounds can be told apart; the base model is recorded by name so ``lab.rerun`` and ``lab.resume``
can load it again (``load_base``) and rebuild the same inputs from the record (``recorded_inputs``).
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass
from pathlib import Path

from ftlab.config import knob
from ftlab.data import load
from ftlab.data.files import as_rows as rows_of
from ftlab.data.loading import Loaded
from ftlab.data.splits import fingerprint
from ftlab.lab.storage import read_jsonl
from ftlab.models import tiny
from ftlab.models.loading import load_model, tiny_model
from ftlab.templates.template import CHAT_TEMPLATE, Template


class Rows(list):
    """One split's rows as they came through the door (what is kept, and what ``fingerprint`` is of), and
    ``dataset``: the same rows converted once by ``ftlab.data.load``, which ``train_round`` and the samples
    use. ``error``: why they could not be converted (the round then fails with it, as a data failure)."""

    dataset = None
    fingerprint: str | None = None
    error: Exception | None = None


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


def at_the_door(given, split: str) -> Rows | Unreadable | None:
    """One split as ``Rows``: read, converted and fingerprinted once, here, then carried down to training,
    the samples and the record (rows that already came through the door are carried as they are).

    A file or Hub id is loaded strictly (``ftlab.data.load``): a bad row fails the round with the row
    named, instead of vanishing from the kept copy and its fingerprint; a split that cannot be read comes
    back as ``Unreadable``. Rows given in memory are kept as given and converted strictly too; a
    conversion that fails is kept as the rows' ``error``, so the round still records (fingerprint, kept
    copy) what it was given.
    """
    if given is None or isinstance(given, Rows | Unreadable):
        return given
    try:
        rows = as_rows(given)
    except Exception as error:  # noqa: BLE001 - recorded as the round's failure, with advice
        return Unreadable(given, error)
    rows.fingerprint = fingerprint(rows)
    if rows.dataset is None:
        try:
            rows.dataset = load(rows, file=split, quiet=True)
        except Exception as error:  # noqa: BLE001 - recorded as the round's failure, with advice
            rows.error = error
    return rows


@dataclass(frozen=True, eq=False)
class RoundInputs:
    """What one round is made of, read once at the lab's door and carried whole: to training, the sample
    answers and the record. ``lab.train(config, model, tokenizer, train, eval)`` builds one; so does
    ``RoundInputs(model, tokenizer, train, eval)``, which ``lab.train(config, inputs)`` then takes as it is
    (a sweep or the panel reads its rows once for all its rounds). ``lab.rerun`` and ``lab.resume``
    rebuild it from the round's record (``recorded_inputs``); the round they return holds it (``.inputs``).

    Nothing given is copied or changed: the model and tokenizer are held as they are (``train_round``
    puts LoRA on a new model over the same weights); the rows are read into new lists of the same rows.
    """

    model: object = knob(MISSING, "the base model, held as given (never copied, never changed)", repr=False)
    tokenizer: object = knob(MISSING, "the model's tokenizer, held as given", repr=False)
    train: Rows | Unreadable = knob(MISSING, "the training rows: anything ftlab.data.load reads, kept as Rows "
                                             "(read, converted and fingerprinted once, at the door)")
    eval: Rows | Unreadable | None = knob(None, "the evaluation rows, like train (optional)")
    template: Template | None = knob(None, "what the model sees and where the loss falls (ftlab.Template); "
                                           "None: the tokenizer's own chat template, as train_round takes it")
    base_model: str | None = knob(None, "the base model's name in the record, which lab.rerun loads again (a Hub "
                                        "id, a folder, or 'tiny'); None: read from the model's name_or_path")

    def __post_init__(self):
        if self.model is None or self.tokenizer is None:
            raise ValueError("a round needs a model and its tokenizer: RoundInputs(model, tokenizer, train, eval)")
        if self.train is None:
            raise ValueError("a round needs training rows: pass train (a list of rows, a Dataset or a file)")
        for split in ("train", "eval"):  # frozen: set once, here, at the door
            object.__setattr__(self, split, at_the_door(getattr(self, split), split))
        if self.base_model is None:
            object.__setattr__(self, "base_model", base_model_name(self.base_model_path))

    @property
    def base_model_path(self) -> str:
        """Where the model was loaded from (its ``name_or_path``), as the record keeps it."""
        return str(getattr(self.model, "name_or_path", "") or "")

    @property
    def problem(self) -> Exception | None:
        """The first split that could not be read or converted: the round fails with it, as a data failure."""
        return next((rows.error for rows in (self.train, self.eval) if rows is not None and rows.error), None)

    def __repr__(self) -> str:
        def told(rows) -> str:
            return ("None" if rows is None else "unreadable" if isinstance(rows, Unreadable)
                    else f"{len(rows)} rows ({rows.fingerprint})")

        return (f"RoundInputs(model={self.base_model!r}, train={told(self.train)}, eval={told(self.eval)}, "
                f"template={template_text(self.tokenizer, self.template)[0]!r})")


def given_inputs(model, tokenizer=None, train=None, eval=None, template=None, base_model=None) -> RoundInputs:
    """The inputs a call was given: a ``RoundInputs`` as it is, or one built from the loose ``model, tokenizer,
    train, eval`` (and ``template``, ``base_model``); both at once is refused."""
    if not isinstance(model, RoundInputs):
        return RoundInputs(model, tokenizer, train, eval, template, base_model)
    extra = [k for k, v in dict(tokenizer=tokenizer, train=train, eval=eval, template=template,
                                base_model=base_model).items() if v is not None]
    if extra:
        raise ValueError(f"the RoundInputs already hold the {', '.join(extra)}: pass either the inputs or model, "
                         "tokenizer, train, eval, not both")
    return model


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


def recorded_inputs(round_, model=None, tokenizer=None, train=None, eval=None) -> RoundInputs:
    """A recorded round's inputs, rebuilt: the model, tokenizer and rows given, else the record's (the base
    model loaded again, the kept rows read back), with the template and base model name the round recorded.
    Given rows must be the ones the round used (same fingerprint), and readable."""
    if model is None:
        model, tokenizer = load_base(round_.record, round_.config)
    elif tokenizer is None:
        raise ValueError("pass the tokenizer with the model")
    recorded, given = round_.record.get("data", {}), {"train": train, "eval": eval}
    sources = dict(given)
    for split, info in recorded.items():
        if given[split] is None:
            if not info.get("file"):
                raise ValueError(f"round {round_.id} did not keep its {split} data: pass {split}= ")
            sources[split] = read_jsonl(round_.path / info["file"])
    inputs = RoundInputs(model, tokenizer, sources["train"], sources["eval"], recorded_template(round_, tokenizer),
                         round_.record.get("base_model"))
    for split, rows in (("train", inputs.train), ("eval", inputs.eval)):
        if given[split] is None:
            continue
        if isinstance(rows, Unreadable):
            raise rows.error
        expected = recorded.get(split, {}).get("fingerprint")
        if expected and rows.fingerprint != expected:
            raise ValueError(f"this {split} data is not the data round {round_.id} used (fingerprints differ); "
                             "train a new round for new data")
    return inputs


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
