"""The one reader of the records ftlab trusts: a JSON or text file that names itself when it cannot be read.

``read_json(path, fix)`` reads a ``round.json``, an ``adapter_config.json``, an ``ftlab_export.json``, a model's
``config.json`` or a calibration file; one that does not parse raises ``DamagedFile`` with the file, the line
and column where parsing stopped, and ``fix`` (what to do about this file). ``read_text`` reads UTF-8 text
and names the file and line of a byte that is not UTF-8 (``NotText``). A missing file raises Python's own
``FileNotFoundError``: callers that expect one check for it first and say what it should have been.
Standard library only.
"""

from __future__ import annotations

import json
from pathlib import Path

from ftlab.files.faults import DamagedFile, NotText

RESAVE = "Write it again (or restore it from a copy); ftlab cannot tell what it held."


def read_text(path, fix: str = "Save it as UTF-8 (an editor's 'Save with encoding', or iconv -f latin1 -t utf-8).") -> str:
    """The text of ``path``, read as UTF-8; a byte that is not UTF-8 raises ``NotText`` naming the file and line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotText(path, error, fix) from None


def read_json(path, fix: str = RESAVE, kind: type | None = dict):
    """The JSON value in ``path``; ``DamagedFile`` (file, line, column, ``fix``) when it does not parse or,
    with ``kind``, is not that kind of value (a record is an object: ``dict``)."""
    text = read_text(path, fix)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise DamagedFile.not_json(path, error, fix) from None
    if kind is not None and not isinstance(value, kind):
        raise DamagedFile.lacks(path, f"it holds a JSON {_json_name(type(value))} where a JSON {_json_name(kind)} "
                                "belongs", fix)
    return value


def _json_name(kind: type) -> str:
    return {dict: "object ({...})", list: "list ([...])", str: "string", int: "number", float: "number",
            bool: "true/false", type(None): "null"}.get(kind, kind.__name__)
