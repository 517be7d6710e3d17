"""Text metrics for judging a fine-tuned model's answers: BLEU, ROUGE, exact match, token F1, numbers.

Every function takes ``(predictions, references)``: two equally long lists of strings, one reference
per prediction. The scores are the familiar ones (sacrebleu's BLEU, Google's rouge-score, SQuAD's
exact match and F1) with one difference that matters in this course: they also work on Chinese,
Japanese, Korean and accented text. Used naively, those libraries quietly score such text as zero
(sacrebleu's default tokenizer sees a Chinese sentence as one word; rouge-score's deletes every
non-ASCII character), so a learner would conclude their model learned nothing when it did.

One scale: every ftlab score is a share between 0 and 1 (BLEU too: sacrebleu's 0-100 score / 100),
and ``SCORES`` is the one table of them, by name; ``score(predictions, references, names)`` returns
them as one flat dict. ``compute(name, predictions, references)`` is for code written against
``evaluate``: the same dict keys and evaluate's own scales (sacrebleu and squad 0-100), without
``evaluate.load``, which fetches code from the Hugging Face Hub and fails offline. Model-based
scores (perplexity) live in ``ftlab.evaluation.scoring``: this module never imports torch. sacrebleu and
rouge-score are imported inside the functions that use them, so importing this module stays cheap.

What every score accepts is checked first (``check_pairs``: two equally long lists of strings; a bare
string would otherwise be scored character by character), and ``has_cjk`` / ``base_lang`` tell Chinese,
Japanese and Korean text apart, since BLEU, ROUGE and F1 must split such text per character.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable

# --- what every score accepts, and which script a text is in ---------------------------------------
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


# --- BLEU ---------------------------------------------------------------------------------------------


def _bleu_tokenizer(references: list[str], lang: str | None) -> str:
    lang = base_lang(lang)
    if lang is None and has_cjk(references):
        # Kana or Hangul means Japanese or Korean; Han characters alone mean Chinese.
        lang = "ja" if any(KANA_OR_HANGUL.search(text) for text in references) else "zh"
    if lang == "zh":
        return "zh"  # splits Chinese characters, treats the rest as 13a does
    if lang in ("ja", "ko"):
        return "char"  # sacrebleu's ja-mecab / ko-mecab need extra packages; characters work offline
    return "13a"  # sacrebleu's default, the WMT standard


def _bleu_score(predictions, references, lang: str | None):
    from sacrebleu.metrics import BLEU

    predictions, references = check_pairs(predictions, references)
    # sacrebleu wants a list of reference *streams*: one inner list per reference set.
    return BLEU(tokenize=_bleu_tokenizer(references, lang)).corpus_score(predictions, [references])


def bleu(predictions, references, lang: str | None = None) -> float:
    """Corpus BLEU from 0 to 1 (sacrebleu's 0-100 score / 100, like every ftlab score); the tokenizer fits
    ``lang`` (detected from the references if None)."""
    return _bleu_score(predictions, references, lang).score / 100


# --- ROUGE --------------------------------------------------------------------------------------------


class _UnicodeTokenizer:
    """Words of letters and digits in any script, lowercased; CJK characters one token each if asked.

    On ASCII text this gives exactly rouge-score's default tokens (runs of [a-z0-9]), which is why the
    underscore is excluded from the words; on other text it keeps what the default deletes.
    """

    def __init__(self, split_cjk: bool):
        self.split_cjk = split_cjk

    def tokenize(self, text: str) -> list[str]:
        text = text.lower()
        if self.split_cjk:
            text = CJK_CHAR.sub(r" \g<0> ", text)
        return re.findall(r"[^\W_]+", text)


def _rouge_tokenizer(texts: list[str], lang: str | None):
    lang = base_lang(lang)
    split_cjk = lang in CJK_LANGS if lang is not None else has_cjk(texts)
    if not split_cjk and all(text.isascii() for text in texts):
        return None  # rouge-score's own tokenizer, so English scores match every published number
    return _UnicodeTokenizer(split_cjk)


def rouge(predictions, references, lang: str | None = None) -> dict[str, float]:
    """Mean ROUGE F-measures (0-1): keys rouge1, rouge2, rougeL, rougeLsum, as evaluate's rouge returns.

    rougeLsum treats each line as a sentence, so put summaries' sentences on separate lines.
    """
    from rouge_score import rouge_scorer

    predictions, references = check_pairs(predictions, references)
    keys = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    tokenizer = _rouge_tokenizer(predictions + references, lang)
    scorer = rouge_scorer.RougeScorer(keys, use_stemmer=False, tokenizer=tokenizer)
    totals = dict.fromkeys(keys, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: total / len(predictions) for key, total in totals.items()}


# --- exact match and token F1 (SQuAD style) -----------------------------------------------------------


def _is_punctuation(char: str) -> bool:
    # SQuAD strips string.punctuation (which includes symbols such as $ and +); the Unicode P*
    # categories add the Chinese and typographic marks (。，！“”) that SQuAD would leave in.
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation and the articles a/an/the, squeeze spaces."""
    text = "".join(char for char in text.lower() if not _is_punctuation(char))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _answer_tokens(text: str) -> list[str]:
    # SQuAD splits on whitespace, which makes a whole Chinese answer one token; split CJK per character.
    return CJK_CHAR.sub(r" \g<0> ", normalize_answer(text)).split()


def _token_f1(prediction: str, reference: str) -> float:
    predicted, expected = _answer_tokens(prediction), _answer_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)  # SQuAD v2's rule: two empty answers agree
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(predictions, references) -> float:
    """Share (0-1) of predictions equal to their reference after SQuAD normalisation."""
    predictions, references = check_pairs(predictions, references)
    hits = sum(
        normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references, strict=True)
    )
    return hits / len(predictions)


def f1(predictions, references) -> float:
    """Mean token F1 (0-1) between each prediction and its reference, SQuAD style; CJK per character."""
    predictions, references = check_pairs(predictions, references)
    return sum(_token_f1(p, r) for p, r in zip(predictions, references, strict=True)) / len(predictions)


# --- numeric answers (GSM8K style) --------------------------------------------------------------------

# An optional minus (not one joining two numbers, as in "3-4"), digits with or without thousands
# commas, an optional decimal part, and an optional "/denominator" for fractions such as 3/4.
_NUMBER = re.compile(
    r"(?P<sign>(?<![0-9A-Za-z)])-)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s*/\s*(?P<den>\d*[1-9]\d*))?"
)


def extract_number(text: str) -> float | None:
    """The last number in ``text`` as a float ("1,234.5", "-3", "3/4", "25%", "１２"), or None if none."""
    if not isinstance(text, str):
        raise ValueError(f"extract_number needs a string, got {type(text).__name__}")
    # NFKC turns full-width digits and signs (１２．５，％) into ASCII; it leaves the Unicode minus alone.
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-")
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    value = float(last["num"].replace(",", ""))
    if last["den"]:
        value /= float(last["den"])
    return -value if last["sign"] else value


def answer_accuracy(predictions, references, tolerance: float = 0.05) -> float:
    """Share (0-1) of predictions whose final number is within ``tolerance`` of the reference's.

    The default 0.05 suits answers rounded to one decimal. A prediction without a number counts as
    wrong; a reference without one is an error in the data, so it raises.
    """
    predictions, references = check_pairs(predictions, references)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    correct = 0
    for i, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        expected = extract_number(reference)
        if expected is None:
            raise ValueError(f"references[{i}] has no number: {reference!r}")
        got = extract_number(prediction)
        # A little slack for binary floats: 12.55 - 12.5 is 0.0500000000000007, not 0.05.
        if got is not None and math.fabs(got - expected) <= tolerance + 1e-9 * max(1.0, abs(expected)):
            correct += 1
    return correct / len(predictions)


# --- evaluate-style access ----------------------------------------------------------------------------


def _sacrebleu_dict(predictions, references, lang: str | None = None) -> dict:
    result = _bleu_score(predictions, references, lang)
    return {
        "score": result.score,
        "counts": result.counts,
        "totals": result.totals,
        "precisions": result.precisions,
        "bp": result.bp,
        "sys_len": result.sys_len,
        "ref_len": result.ref_len,
    }


def _bleu_dict(predictions, references, lang: str | None = None) -> dict:
    # evaluate's "bleu" reports on a 0-1 scale; this is sacrebleu's score divided by 100. Where some
    # n-gram order has no match at all, evaluate's unsmoothed BLEU gives 0 and sacrebleu's smoothed
    # one a little more, so on tiny corpora the two can differ.
    result = _bleu_score(predictions, references, lang)
    return {
        "bleu": result.score / 100,
        "precisions": [p / 100 for p in result.precisions],
        "brevity_penalty": result.bp,
        "length_ratio": result.sys_len / max(result.ref_len, 1),
        "translation_length": result.sys_len,
        "reference_length": result.ref_len,
    }


def _squad_dict(predictions, references) -> dict:
    # evaluate's "squad" reports both scores on a 0-100 scale
    return {
        "exact_match": 100 * exact_match(predictions, references),
        "f1": 100 * f1(predictions, references),
    }


# --- the one table ------------------------------------------------------------------------------------
# name -> function(predictions, references, **options) -> {key: score from 0 to 1}
SCORES: dict[str, Callable[..., dict]] = {
    "exact_match": lambda p, r, lang=None: {"exact_match": exact_match(p, r)},
    "f1": lambda p, r, lang=None: {"f1": f1(p, r)},
    "rouge": lambda p, r, lang=None: rouge(p, r, lang=lang),
    "bleu": lambda p, r, lang=None: {"bleu": bleu(p, r, lang=lang)},
    "answer_accuracy": lambda p, r, lang=None, tolerance=0.05: {"answer_accuracy": answer_accuracy(p, r, tolerance)},
}
DEFAULT_SCORES = ("exact_match", "f1", "rouge", "bleu")


def score(predictions, references, names=DEFAULT_SCORES, lang: str | None = None, **options) -> dict:
    """The named scores as one flat dict, each from 0 to 1 (ROUGE expands into rouge1, rouge2, rougeL, rougeLsum).

    ``lang`` goes to the scores that tokenize; ``tolerance`` (and other options) to answer_accuracy.
    """
    found: dict = {}
    for name in names:
        if name not in SCORES:
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(SCORES)}")
        extra = options if name == "answer_accuracy" else {}
        found.update(SCORES[name](predictions, references, lang=lang, **extra))
    return found


def compute(name: str, predictions, references, **kwargs) -> dict:
    """Like ``evaluate.load(name).compute(predictions=..., references=...)``, offline and with one reference each.

    evaluate's keys and scales, for code written against it: sacrebleu (score 0-100) and bleu (0-1) in
    evaluate's layouts, squad (exact_match and f1 on 0-100), and every name of ``SCORES`` (0-1).
    Extra keyword arguments (``lang``, ``tolerance``) go to the metric.
    """
    layouts = {"sacrebleu": _sacrebleu_dict, "bleu": _bleu_dict, "squad": _squad_dict}
    if name in layouts:
        return layouts[name](predictions, references, **kwargs)
    if name not in SCORES:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join([*SCORES, *layouts])}")
    return score(predictions, references, (name,), **kwargs)
