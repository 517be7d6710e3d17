"""Checks of exercise 03 (metrics by hand)."""

from __future__ import annotations

import random
import secrets

from ftlab.course.checks.base import CheckFailed, fail, passed
from ftlab.evaluation import metrics


def _fresh_pairs(count: int = 12) -> list[tuple[str, str]]:
    """(prediction, reference) pairs drawn afresh at every call, each kind of SQuAD trap among them: case,
    punctuation and articles that normalise away, a word repeated (tokens count with multiplicity), a word
    missing or extra or another."""
    rng = random.Random(secrets.randbits(32))
    words = ["red", "green", "apple", "14", "cats", "blue", "sky", "42", "answer", "river", "seven", "tea"]

    def phrase(n):
        return rng.sample(words, n)

    def dress(tokens):  # what normalisation removes: case, an article, punctuation
        out = [rng.choice(["the", "The", "a", "An"])] + tokens if rng.random() < 0.5 else list(tokens)
        out = [t.upper() if rng.random() < 0.2 else t for t in out]
        return " ".join(out) + rng.choice(["", ".", "!", "?", ","])

    pairs = []
    for kind in ["same", "repeat", "missing", "extra", "other"] * (count // 5 + 1):
        reference = phrase(rng.randint(2, 4))
        prediction = {"same": list(reference), "repeat": reference + [reference[0]],
                      "missing": reference[1:], "extra": reference + [rng.choice(words)],
                      "other": reference[:-1] + [rng.choice([w for w in words if w not in reference])]}[kind]
        pairs.append((dress(prediction), dress(reference)))
    return pairs[:count]


def check_em_f1_by_hand(exact_match, f1) -> bool:
    """Exercise 03: ``exact_match(prediction, reference)`` and ``f1(prediction, reference)``, written by hand by
    SQuAD's rules, agree with ftlab's on pairs drawn afresh at every call (graded as a whole: a pair where a
    function disagrees is shown, never the value it should give)."""
    for name, function, reference_function in (("exact_match", exact_match, metrics.exact_match),
                                               ("f1", f1, metrics.f1)):
        if function is None:
            raise CheckFailed(f"{name} is still None: fill in the TODO cell above.")
        if not callable(function):
            raise CheckFailed(f"{name} should be a function of (prediction, reference) that returns a number, not a "
                              f"{type(function).__name__}.")
        for prediction, reference in _fresh_pairs():
            try:
                value = function(prediction, reference)
            except Exception as error:  # the learner's code: say what broke, in their terms
                raise CheckFailed(f"{name}({prediction!r}, {reference!r}) raised {type(error).__name__}: {error}") \
                    from None
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise CheckFailed(f"{name}(...) returned a {type(value).__name__}: it should return a number.")
            if abs(value - reference_function([prediction], [reference])) <= 1e-6:
                continue
            idea = ("normalise both first (lower-case, drop punctuation and the articles a/an/the, squeeze spaces), "
                    "then compare the whole strings" if name == "exact_match" else
                    "normalise both first, then count the tokens they share, each as many times as it appears in "
                    "both: P = shared / prediction tokens, R = shared / reference tokens, F1 = 2PR / (P + R)")
            raise CheckFailed(f"{name} disagrees with SQuAD's rule on pairs it had not seen, e.g. {prediction!r} vs "
                              f"{reference!r}.\nHint: work that pair out on paper: {idea}.")
    return passed("exact match and F1 agree with SQuAD's rules on pairs your functions had not seen")


def check_cjk_rouge_tokenizer(tokenizer) -> bool:
    """A rouge-score tokenizer (an object with ``.tokenize(text)``) that keeps Chinese, one token per character."""
    from rouge_score import rouge_scorer

    if tokenizer is None or not hasattr(tokenizer, "tokenize"):
        fail("tokenizer", tokenizer, "an object with a tokenize(text) method returning a list of tokens")
    reference, near = "今天天气很好", "今天天气不错"
    tokens = list(tokenizer.tokenize(reference))
    if tokens != list(reference):
        how = (f"{len(tokens)} tokens for {len(reference)} characters" if len(tokens) != len(reference) else
               "tokens that are not the characters themselves")
        raise CheckFailed(f"tokenizer.tokenize('{reference}') gives {how}.\nHint: revisit what rouge-score's default "
                          "tokenizer does wrong: it splits on ASCII words, so Chinese must be split per character.")
    scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=tokenizer)
    same = scorer.score(reference, reference)["rouge1"].fmeasure
    partial = scorer.score(reference, near)["rouge1"].fmeasure
    if not (same == 1.0 and 0 < partial < 1):
        raise CheckFailed("ROUGE-1 with your tokenizer should be 1 for identical text and between 0 and 1 for text "
                          "that shares some characters.\nHint: revisit ROUGE-1: the share of the reference's "
                          "tokens found in the prediction.")
    return passed(f"ROUGE-1 on Chinese: identical {same:.2f}, near {partial:.2f} (the default tokenizer gives 0.0)")
