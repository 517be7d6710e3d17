"""Read a data file into raw rows, each with the row number a learner can find in an editor.

Row numbers are 1-based and mean:

* ``.jsonl``: the **line number** (blank lines are skipped but still counted);
* ``.csv``: the **data row number**, header excluded and blank lines not counted, i.e. the row
  ``pandas.read_csv(path).iloc[row - 1]``;
* ``.json`` (a list of objects, or ``{"data": [...]}``) and ``.parquet``: the position in the list.

Files are read as bytes and decoded line by line when they are not valid UTF-8, so the problem names
the line with the bad bytes (and says when the file looks GBK-encoded, as files saved by Chinese
Windows or Excel often are). A line that is not valid JSON is reported, not raised, so one bad line
never hides the others.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlab.data.errors import Finding

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
REPLACEMENT = "\ufffd"  # what an undecodable byte becomes when decoding with errors="replace"
Record = tuple[int, Any]  # (1-based row number, the raw row)


@dataclass
class Read:
    """What reading a source gave: its name, raw rows, problems met while reading, notes to print."""

    name: str
    records: list[Record]
    problems: list[tuple[str, Finding]] = field(default_factory=list)  # (kind of problem, finding)
    notes: list[str] = field(default_factory=list)


def _decode(data: bytes, name: str) -> tuple[str, dict[int, str], str]:
    """The text, {line number: what is wrong} for lines that are not valid UTF-8, and how to fix it."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM, as Excel and Notepad write it
    try:
        return data.decode("utf-8"), {}, ""
    except UnicodeDecodeError:
        pass
    try:
        data.decode("gbk")
        hint = (" The file looks GBK-encoded (common for Chinese files saved on Windows or by Excel): convert "
                f"it with `iconv -f GBK -t UTF-8 {name} > fixed.jsonl`, or in Python "
                "open(path, encoding='gbk').read() and write it back with encoding='utf-8'.")
    except UnicodeDecodeError:
        hint = " Re-save the file as UTF-8 (most editors offer 'Save with encoding: UTF-8')."
    lines, bad = [], {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            byte = raw[error.start]
            bad[number] = f"not valid UTF-8: byte 0x{byte:02x} at column {error.start + 1} of line {number}."
            lines.append(raw.decode("utf-8", errors="replace"))
    return "\n".join(lines), bad, hint


def _read_jsonl(text: str, bad: dict[int, str], hint: str, read: Read) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if number in bad:
            read.problems.append(("invalid UTF-8", Finding(number, None, bad[number] + hint, read.name)))
            continue
        try:
            read.records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            hint = ("; the file looks like pretty-printed JSON: name it .json, or write one object per line"
                    if line.strip() in ("{", "[", "}", "]", "},", "],") else
                    "; each line must be one complete JSON object, "
                    "e.g. {\"instruction\": \"...\", \"output\": \"...\"}")
            message = f"not valid JSON ({error.msg} at column {error.colno}){hint}"
            read.problems.append(("invalid JSON", Finding(number, None, message, read.name)))


def _flag_replaced(read: Read, bad: dict[int, str], hint: str) -> None:
    """In a .json file a bad byte cannot be tied to a row by its line: flag the rows that hold one."""
    lines = ", ".join(map(str, list(bad)[:5])) + (", ..." if len(bad) > 5 else "")
    message = f"holds bytes that are not valid UTF-8 (the file's bad lines: {lines}).{hint}"
    for number, row in read.records:
        if REPLACEMENT in json.dumps(row, ensure_ascii=False):
            read.problems.append(("invalid UTF-8", Finding(number, None, message, read.name)))


def _read_json(text: str, bad: dict[int, str], hint: str, read: Read) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.lstrip().startswith("{"):  # JSON Lines in a .json file
            read.notes.append(f"note: {read.name} holds one JSON object per line (JSON Lines): reading it as "
                              ".jsonl, so rows are numbered by line")
            _read_jsonl(text, bad, hint, read)
            return
        message = (f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}. "
                   "Check for a missing comma or quote there (a trailing comma before ']' or '}' is not allowed)")
        read.problems.append(("invalid JSON", Finding(None, None, message, read.name)))
        return
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        key = "data" if "data" in lists else lists[0] if len(lists) == 1 else None
        if key is None:
            message = (f"expected a list of rows, or {{\"data\": [...]}}; found an object with the keys "
                       f"{sorted(data)[:10]}")
            read.problems.append(("unknown layout", Finding(None, None, message, read.name)))
            return
        data = data[key]
    if not isinstance(data, list):
        message = f"expected a list of rows, or {{\"data\": [...]}}; found a {type(data).__name__}"
        read.problems.append(("unknown layout", Finding(None, None, message, read.name)))
        return
    read.records.extend(enumerate(data, start=1))
    if bad:
        _flag_replaced(read, bad, hint)


def _read_csv(text: str, bad: dict[int, str], hint: str, read: Read) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    number = 0
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            message = f"cannot be read as CSV ({error}); check the quotes on line {reader.line_num}"
            read.problems.append(("bad CSV row", Finding(number + 1, None, message, read.name)))
            break
        if not cells or all(not c.strip() for c in cells):
            continue  # a blank line: pandas skips it too
        number += 1
        lines = [n for n in range(first_line, reader.line_num + 1) if n in bad]
        if lines:
            read.problems.append(("invalid UTF-8", Finding(number, None, bad[lines[0]] + hint, read.name)))
        if len(cells) > len(header):
            message = (f"has {len(cells)} cells but the header has {len(header)} columns (line {first_line}); "
                       "a value containing a comma must be in double quotes")
            read.problems.append(("bad CSV row", Finding(number, None, message, read.name)))
        cells += [None] * (len(header) - len(cells))  # a short row: its missing cells have no value
        read.records.append((number, dict(zip(header, cells, strict=False))))


def as_rows(source) -> list:
    """The rows of an in-memory source as a list: a Dataset's rows, a DataFrame's rows with every empty
    cell (NaN) as None, or the items of a list or other iterable, unchanged. The one place ftlab does this."""
    if hasattr(source, "to_list") and hasattr(source, "column_names"):  # a datasets.Dataset
        return source.to_list()
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # a pandas DataFrame
        return source.astype(object).where(source.notna(), None).to_dict("records")
    return list(source)


def read_file(path: Path, name: str) -> Read:
    """Read ``path`` (.jsonl, .json, .csv or .parquet) into a ``Read``; ``name`` is used in findings."""
    suffix = path.suffix.lower()
    read = Read(name=name, records=[])
    if suffix == ".parquet":
        import pandas as pd

        read.records = list(enumerate(as_rows(pd.read_parquet(path)), 1))
        return read
    if suffix not in FILE_SUFFIXES:
        raise ValueError(f"ftlab.data reads {', '.join(FILE_SUFFIXES)} files, "
                         f"not {suffix or 'files without a suffix'} "
                         f"({name}); save the data as JSON Lines (one JSON object per line)")
    text, bad, hint = _decode(path.read_bytes(), name)
    {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv}[suffix](text, bad, hint, read)
    return read
