"""Load a learner's data from wherever it is, check every row, and return canonical chat rows.

``load(source)`` accepts a list of dicts, a pandas DataFrame, a ``datasets.Dataset``, a ``.json``,
``.jsonl``, ``.csv`` or ``.parquet`` file, or a Hub id (online only), detects the format of each row
(Alpaca, prompt/completion, chat, ShareGPT: see ``ftlab.data.formats``) and returns a
``datasets.Dataset`` of ``{"messages": [...]}`` rows with the extra columns kept. ``validate(source)``
runs the same checks and returns every problem as a ``Finding`` instead.

Every bad row is reported in one pass, each naming the file, the row, the field and the fix, so a bad
file never becomes a ``KeyError`` deep inside a trainer. Strict loading raises one
``DataFormatError`` with all of them; ``strict=False`` drops the bad rows, keeps the good rows exactly
as they are, and prints what it dropped and why. A split converted once is passed down wrapped in
``Loaded`` (the lab does, from its door to ``train_round``), so that ``load`` hands it back without a
second pass.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ftlab.data.errors import DataFormatError, Finding
from ftlab.data.files import FILE_SUFFIXES, Read, as_rows, read_file
from ftlab.data.formats import FORMAT_NAMES, detect_format, to_chat, unknown_fields_message
from ftlab.machine import HubUnavailableError, hub_forced_offline, hub_online, hub_unavailable

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


OFFLINE_DATA = ("Use a local file instead, e.g. ftlab.data.load('data.jsonl') (on Kaggle: attach the data set to "
                "the notebook and load its path under /kaggle/input), or ftlab's offline sets: "
                "ftlab.data.python_docs(2600) (real English questions and answers from Python's own documentation, "
                "PSF license, the size of seed 003's Alpaca set), ftlab.data.general() (general instructions) or "
                "ftlab.data.arithmetic(1000) (word problems).")


def _hub_error(name: str) -> HubUnavailableError:
    return hub_unavailable(name, "the data set", OFFLINE_DATA)


def _from_hub(name: str, split: str):
    from datasets import load_dataset

    offline = hub_forced_offline()  # then datasets reads its cache, and fails at once if the set is not there
    if not offline and not hub_online(timeout=3.0):
        raise _hub_error(name)
    try:
        return load_dataset(name, split=split)
    except ConnectionError as error:  # offline mode raises this at once when the set is not cached
        raise _hub_error(name) from error
    except Exception as error:
        if offline:
            raise _hub_error(name) from error
        raise


def _read(source, file: str | None, split: str) -> Read:
    """The raw rows of any source, each with its 1-based row number, plus problems met while reading."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_file():
            return read_file(path, file or str(source))
        if path.is_dir():  # a data problem (the round's failure says so), not an unknown one
            raise DataFormatError([Finding(None, None, f"a folder, not a data file; pass one of its files "
                                           f"({', '.join(FILE_SUFFIXES)})", str(source))])
        text = str(source)
        if path.suffix.lower() in FILE_SUFFIXES or text.startswith((".", "/", "~")) or not HUB_ID.match(text):
            raise FileNotFoundError(f"No such file: {text!r} (the current folder is {os.getcwd()})")
        source, file = _from_hub(text, split), file or text
    name = file or "data"
    if hasattr(source, "column_names") and isinstance(source, dict):  # a DatasetDict
        if split not in source:
            raise ValueError(f"{name} has the splits {sorted(source)}; choose one with split=...")
        source = source[split]
    if isinstance(source, dict):
        raise TypeError("load() takes a list of rows, not one row: wrap it in a list, [row]")
    return Read(name=name, records=list(enumerate(as_rows(source), start=1)))


@dataclass
class _Inspection:
    """Everything one pass over a source found: converted good rows, problems, formats seen."""

    name: str
    rows: list[tuple[int, dict]] = field(default_factory=list)  # (row number, chat row), rows with no problem
    problems: list[tuple[str, Finding]] = field(default_factory=list)  # (kind of problem, finding)
    formats: Counter = field(default_factory=Counter)
    total: int = 0
    notes: list[str] = field(default_factory=list)


def _column_types(inspection: _Inspection, converted: list[tuple[int, dict]]) -> None:
    # Arrow stores a column as one type: a column that is text in most rows and a number in one would
    # fail later with an unreadable error, so name the odd rows now.
    def kind(value) -> str | None:
        if value is None:
            return None  # a missing value fits any column
        return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__

    kinds: dict[str, Counter] = {}
    for _, row in converted:
        for key, value in row.items():
            if key != "messages" and value is not None:
                kinds.setdefault(key, Counter())[kind(value)] += 1
    for key, counts in kinds.items():
        if len(counts) < 2:
            continue
        major, count = counts.most_common(1)[0]
        for number, row in converted:
            odd = kind(row.get(key))
            if odd is not None and odd != major:
                message = (f"the column holds {major} values in {count:,} rows but a {odd} here; "
                           "make the whole column one kind (e.g. all text)")
                inspection.problems.append(("mixed column types", Finding(number, key, message, inspection.name)))


def _first_rows(read: Read, first: int) -> None:
    """Keep the first ``first`` rows of ``read``, a row that could not be read counting as one, numbered as before."""
    numbers = sorted({number for number, _ in read.records} | {f.row for _, f in read.problems if f.row is not None})
    last = numbers[first - 1] if len(numbers) >= first else float("inf")
    read.records = [(number, raw) for number, raw in read.records if number <= last]
    read.problems = [(kind, f) for kind, f in read.problems if f.row is None or f.row <= last]


def _inspect(source, file, split, template, max_length, first: int | None = None) -> _Inspection:
    read = _read(source, file, split)
    if first is not None:
        _first_rows(read, first)
    inspection = _Inspection(name=read.name, problems=list(read.problems), notes=list(read.notes))
    name, converted, format_of = read.name, [], {}
    for number, raw in read.records:
        if not isinstance(raw, dict):
            message = f"a row must be an object with named fields, got {type(raw).__name__}"
            inspection.problems.append(("not an object", Finding(number, None, message, name)))
            continue
        fmt = detect_format(raw)
        if fmt is None:
            inspection.problems.append(("unknown fields", Finding(number, None, unknown_fields_message(raw), name)))
            continue
        inspection.formats[fmt] += 1
        format_of[number] = fmt
        row, problems = to_chat(raw, fmt)
        inspection.problems += [(kind, Finding(number, where, message, name)) for kind, where, message in problems]
        if row is not None:
            converted.append((number, row))
    if len(inspection.formats) > 1:  # usually two files pasted together: one of them was not meant to be here
        major, count = inspection.formats.most_common(1)[0]
        for number, fmt in format_of.items():
            if fmt != major:
                message = (f"this row is in {FORMAT_NAMES[fmt]} format but {count:,} rows are {FORMAT_NAMES[major]}; "
                           "keep one format per file (load different files separately and concatenate)")
                inspection.problems.append(("mixed formats", Finding(number, None, message, name)))
    _column_types(inspection, converted)
    if template is not None:
        _check_lengths(inspection, converted, template, max_length)
    if not read.records and not inspection.problems:
        inspection.problems.append(("no rows", Finding(None, None, "there are no rows: the source is empty", name)))
    bad = {f.row for _, f in inspection.problems}
    inspection.rows = [(number, row) for number, row in converted if number not in bad]
    inspection.total = len({number for number, _ in read.records} | (bad - {None}))
    inspection.problems.sort(key=lambda p: (p[1].row is None, p[1].row or 0))
    return inspection


def _check_lengths(inspection: _Inspection, converted, template, max_length) -> None:
    """Rows over ``max_length`` tokens once ``template`` (a ``ftlab.Template``: the ids the trainer sees) made them."""
    if not max_length:
        raise ValueError("checking lengths needs max_length too, e.g. max_length=512")
    if not hasattr(template, "token_lengths"):
        raise TypeError(f"template must be a ftlab.Template (Template.chat(tokenizer), say), got "
                        f"{type(template).__name__}")
    lengths = template.token_lengths([row["messages"] for _, row in converted])
    for (number, _), length in zip(converted, lengths, strict=True):
        if length > max_length:
            message = (f"{length} tokens after the chat template, over max_length={max_length}: the trainer "
                       "would cut it (and the answer with it); shorten it, raise max_length, or drop it")
            inspection.problems.append(("too long", Finding(number, "messages", message, inspection.name)))


def _capped(inspection: _Inspection, limit: int) -> list[Finding]:
    findings = [f for _, f in inspection.problems]
    if len(findings) > limit:
        more = len(findings) - limit
        note = f"... and {more:,} more problems not listed (limit={limit:,}); fix these and check again"
        findings = findings[:limit] + [Finding(None, None, note, inspection.name)]
    return findings


def validate(source, file: str | None = None, *, template=None, max_length: int | None = None,
             limit: int = 1000, split: str = "train", first: int | None = None) -> list[Finding]:
    """Every problem in ``source``, found in one pass; an empty list means the data is ready.

    ``source`` is anything ``load`` accepts. Each ``Finding`` names the file (or ``file``, or "data"),
    the 1-based row, the field and what to do. Rows are numbered as an editor shows them: in a
    ``.jsonl`` file the **line number**; in a ``.csv`` file the **data row number, header excluded**
    (blank lines not counted); in a ``.json`` file, list, DataFrame or Dataset the position in the list.
    It checks: unreadable lines (invalid UTF-8, invalid JSON), rows with missing or unknown fields,
    non-string values, empty prompts, answers and turns, unknown roles, two assistant turns in a row
    (a conversation's problems name its turn), conversations that do not end with the assistant,
    several formats mixed in one file, columns mixing kinds of values, and, given a ``template``
    (``ftlab.Template.chat(tokenizer)``, say) and ``max_length``, rows longer than ``max_length`` tokens
    once templated. ``first``: check only the first ``first`` rows (as ``load(..., first=...)`` reads them).
    The list stops at ``limit`` findings, with a last one saying how many more there are.
    """
    return _capped(_inspect(source, file, split, template, max_length, _checked_first(first)), limit)


def _report(inspection: _Inspection, shown: int = 5) -> str:
    rows_by_kind: dict[str, set] = {}
    for kind, finding in inspection.problems:
        rows_by_kind.setdefault(kind, set()).add(finding.row)
    dropped = inspection.total - len(inspection.rows)
    lines = [f"Dropped {dropped:,} of {inspection.total:,} rows of {inspection.name} "
             f"(kept {len(inspection.rows):,}). Rows per problem:"]
    lines += [f"  {kind}: {len(rows):,}" for kind, rows in sorted(rows_by_kind.items(), key=lambda kv: -len(kv[1]))]
    lines.append(f"First problems (all of them: ftlab.data.validate({inspection.name!r})):")
    lines += [f"  - {finding}" for _, finding in inspection.problems[:shown]]
    return "\n".join(lines)


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def load(source, strict: bool = True, file: str | None = None, *, template=None, max_length: int | None = None,
         split: str = "train", quiet: bool = False, first: int | None = None):
    """A ``datasets.Dataset`` of chat rows (``messages`` plus any extra columns) from ``source``.

    ``source``: a list of dicts, a pandas DataFrame, a ``datasets.Dataset``, a path to a ``.jsonl``,
    ``.json`` (a list of rows, or ``{"data": [...]}``), ``.csv`` or ``.parquet`` file, or a Hub id
    such as ``"tatsu-lab/alpaca"`` (online only; offline it raises ``HubUnavailableError`` at once).
    Each row may be Alpaca, prompt/completion, chat or ShareGPT; the format detected is printed.
    ``file`` names an in-memory source in messages. ``strict=True`` raises one ``DataFormatError``
    with every problem (see ``validate`` for the checks and the row numbering); ``strict=False`` drops
    the bad rows, keeps every good row unchanged, and prints how many were dropped and why.
    A Dataset is converted and checked every time it is given; a split that was, passed down as
    ``Loaded(dataset)``, comes back as it is unless a ``template`` asks for the length check.
    ``first``: only the first ``first`` rows of the source, in order, keeping their row numbers (a row
    that cannot be read counts as one, and is reported); the rows after them are not read into the set.
    """
    from datasets import Dataset

    if isinstance(source, Loaded):
        if template is None:
            return source.dataset  # converted and checked already (at the lab's door): carried down, not redone
        source = source.dataset
    inspection = _inspect(source, file, split, template, max_length, _checked_first(first))
    name, say = inspection.name, (lambda text: None) if quiet else print
    for note in inspection.notes:
        say(note)
    counts = ", ".join(f"{FORMAT_NAMES[f]} {_rows(n)}" for f, n in inspection.formats.most_common())
    if len(inspection.formats) == 1:
        fmt, n = next(iter(inspection.formats.items()))
        say(f"Detected {FORMAT_NAMES[fmt]} format in {name}: {_rows(n)}")
    elif inspection.formats:
        say(f"Detected several formats in {name}: {counts}")
    if inspection.problems and strict:
        say(f"{len(inspection.problems):,} problem(s) in {name}: fix them, or load(..., strict=False) to drop "
            "the bad rows")
        raise DataFormatError(_capped(inspection, 1000))
    if inspection.problems:
        say(_report(inspection))
    if not inspection.rows:
        raise DataFormatError(_capped(inspection, 1000))
    try:
        dataset = Dataset.from_list([row for _, row in inspection.rows])
    except (TypeError, ValueError) as error:  # pyarrow's ArrowInvalid / ArrowTypeError are ValueError/TypeError
        message = (f"the rows cannot be stored as a table ({error}); a column probably mixes kinds of values, "
                   "e.g. text in some rows and lists in others: make each column one kind")
        raise DataFormatError([Finding(None, None, message, name)]) from error
    return dataset


@dataclass(frozen=True)
class Loaded:
    """A split ``load`` has converted and checked, passed down as it is: ``load(Loaded(dataset))`` returns
    ``dataset`` without a second pass. The lab converts each split once, at its door, and hands it to
    ``train_round`` this way."""

    dataset: object


def chat_dataset(rows):
    """A Dataset of chat rows: a Dataset with a ``messages`` column as it is, anything else via ``load``."""
    if hasattr(rows, "column_names") and "messages" in rows.column_names:
        return rows
    return load(rows, quiet=True)


ALPACA = "tatsu-lab/alpaca"


def _checked_first(first):
    if first is not None and (isinstance(first, bool) or not isinstance(first, int) or first < 1):
        raise ValueError(f"first must be a whole number of rows, 1 or more (or None for all), not {first!r}")
    return first


def load_alpaca(n: int = 2600, source=ALPACA, *, strict: bool = True, quiet: bool = False):
    """The first ``n`` rows of Alpaca, in order, as chat rows: seed 003 fine-tuned TinyLlama on the first 2,600.

    ``source``: the Hub id ``tatsu-lab/alpaca`` (online only: offline it raises ``HubUnavailableError`` at
    once, naming the offline sets, ``python_docs`` first), or a local copy in Alpaca's schema: Stanford's
    ``alpaca_data.json`` (a JSON list of ``{"instruction", "input", "output"}``), or a ``.jsonl``, ``.csv`` or
    ``.parquet`` file of the same rows. Each row converts like any Alpaca row (``ftlab.data.formats``): the
    user turn is the instruction, then a blank line and the input when it is not empty; the answer is the
    output; the Hub copy's pre-formatted ``text`` column is dropped. A malformed row among the first ``n``
    raises one ``DataFormatError`` naming the file, row and field of each problem; ``strict=False`` drops
    those rows, keeps the others as they are and says which it dropped. Alpaca's license: CC BY-NC 4.0
    (non-commercial use; its answers were generated with OpenAI's text-davinci-003).
    """
    n = _checked_first(n)
    if n is None:
        raise ValueError("n must be a whole number of rows, 1 or more; Alpaca has 52,002")
    if isinstance(source, str) and source == ALPACA:  # the Hub slices the split: only n rows are converted
        return load(source, strict=strict, split=f"train[:{n}]", quiet=quiet)
    return load(source, strict=strict, quiet=quiet, first=n)
