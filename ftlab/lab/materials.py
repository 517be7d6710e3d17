"""What a round is made of: its rows, their fingerprint, its template's text, and its base model.

``Lab`` turns the data it is given into rows once, at its door (``as_rows``), fingerprints them and
keeps a copy; the template is recorded as text so two rounds can be told apart; the base model is
recorded by name so ``lab.rerun`` and ``lab.resume`` can load it again (``load_base``).
"""

from __future__ import annotations

import os
from pathlib import Path


def as_rows(rows) -> list:
    """A list of rows from a list, a Dataset, a DataFrame, or a file / Hub id that ftlab.data.load reads."""
    if isinstance(rows, str | os.PathLike):
        from ftlab.data import load

        return load(rows, strict=False, quiet=True).to_list()
    if hasattr(rows, "to_list"):  # a datasets.Dataset
        return rows.to_list()
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
        return rows.to_dict("records")
    return list(rows)


def fingerprint(rows) -> str:
    """ftlab.data's order-independent fingerprint; a plain hash for anything it cannot read (bad rows)."""
    import hashlib
    import json

    if not isinstance(rows, str):
        try:
            from ftlab.data import fingerprint as data_fingerprint

            return data_fingerprint(rows)
        except Exception:  # rows that are not all dicts still need a fingerprint, to record the failure
            pass
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]


PROBE = [{"role": "user", "content": "{prompt}"}, {"role": "assistant", "content": "{answer}"}]


def template_text(tokenizer, template=None) -> tuple[str, str]:
    """The template's style and its text: the chat template's source, or a probe row rendered by it."""
    style = getattr(template, "style", "chat")
    if style == "chat":
        return style, getattr(tokenizer, "chat_template", None) or ""
    return style, template.training_text(PROBE)


def is_ftlab_template(style: str, text: str) -> bool:
    from ftlab.templates import CHAT_TEMPLATE

    return style == "chat" and text == CHAT_TEMPLATE


def base_model_name(path: str) -> str:
    """"tiny" for ftlab's tiny model (its cache path differs between machines), else the Hub id or path."""
    from ftlab import tiny

    return "tiny" if path and Path(path).name == tiny.cache_dir().name else path


def load_base(record: dict, config):
    """Load the recorded base model again (ftlab's tiny model, a Hub id or a local folder)."""
    from ftlab.models import load_model, tiny_model

    path = record.get("base_model_path")
    if record.get("base_model") == "tiny":
        where = path if path and (Path(path) / "config.json").exists() else None
        return tiny_model(quantization=config.quantization, path=where)
    return load_model(path or record["base_model"], quantization=config.quantization)
