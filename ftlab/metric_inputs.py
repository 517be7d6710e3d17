"""What every text metric accepts, and which script a text is in.

Scores take ``(predictions, references)``: two equally long lists of strings, one reference per
prediction. ``check_pairs`` refuses anything else with a message that says what to change (a bare
string would otherwise be scored character by character). ``has_cjk`` / ``base_lang`` tell Chinese,
Japanese and Korean text apart, since BLEU, ROUGE and F1 must split such text per character rather
than score it as zero (``ftlab.metrics``).
"""

from __future__ import annotations

import re

# Han ideographs (with extension A), Hiragana, Katakana, Hangul syllables and jamo.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\u3040-\u309f\u30a0-\u30ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
CJK_CHAR = re.compile(f"[{_CJK}]")
KANA_OR_HANGUL = re.compile("[\u3040-\u30ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
CJK_LANGS = {"zh", "ja", "ko"}


def _as_texts(values, name: str) -> list[str]:
    # A bare string is iterable, so without this check bleu("a cat", "a cat") would score characters.
    if isinstance(values, (str, bytes)):
        raise ValueError(
            f"{name} must be a list of strings, got a single {type(values).__name__}; wrap it: [text]"
        )
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a list of strings, got {type(values).__name__}") from None
    for i, value in enumerate(values):
        if value is None:
            raise ValueError(f"{name}[{i}] is None, expected a string")
        if isinstance(value, (list, tuple)):
            # evaluate's metrics accept several references per prediction; these take exactly one.
            raise ValueError(
                f"{name}[{i}] is a {type(value).__name__}, expected a string (one reference per prediction)"
            )
        if not isinstance(value, str):
            raise ValueError(f"{name}[{i}] is a {type(value).__name__} ({value!r}), expected a string")
    return values


def check_pairs(predictions, references) -> tuple[list[str], list[str]]:
    predictions = _as_texts(predictions, "predictions")
    references = _as_texts(references, "references")
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references; they must pair up one to one"
        )
    if not predictions:
        raise ValueError("nothing to score: predictions and references are empty")
    return predictions, references


def base_lang(lang: str | None) -> str | None:
    # "zh-CN", "zh_Hans" and "ZH" all mean Chinese here.
    return None if lang is None else re.split(r"[-_]", lang.strip().lower())[0]


def has_cjk(texts: list[str]) -> bool:
    return any(CJK_CHAR.search(text) for text in texts)
