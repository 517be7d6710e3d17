"""Checks of exercise 03 (metrics by hand)."""

from __future__ import annotations

from ftlab.course.checks.base import CheckFailed, fail, passed
from ftlab.evaluation import metrics


def check_em_f1_by_hand(pairs, em, f1) -> bool:
    """``em`` and ``f1``: lists with the exact match (0 or 1) and token F1 of each (prediction, reference).

    A wrong value is named with the direction of the mistake and the step of the rule to redo; the
    right value is never printed (a learner who copies it learns nothing).
    """
    for name, values, function in (("em", em, metrics.exact_match), ("f1", f1, metrics.f1)):
        if not isinstance(values, list | tuple) or len(values) != len(pairs):
            fail(name, values, f"a list of {len(pairs)} numbers, one per pair")
        for i, ((prediction, reference), value) in enumerate(zip(pairs, values, strict=True)):
            expected = function([prediction], [reference])
            if not isinstance(value, int | float) or isinstance(value, bool):
                fail(f"{name}[{i}]", value, "a number")
            if abs(value - expected) <= 0.01:
                continue
            pair = f"{prediction!r} vs {reference!r}"
            if name == "em":
                idea = ("exact match is 1 only when the two *normalised* strings are equal: lower-case, drop punctuation "
                        "and the articles a/an/the, squeeze spaces, then compare." + (
                            " Normalising can make two different-looking strings equal." if expected else
                            " One extra or missing word after normalising makes it 0."))
                raise CheckFailed(f"em[{i}] is not right for {pair}.\nHint: revisit the normalisation: {idea}")
            direction = "too high" if value > expected else "too low"
            raise CheckFailed(f"f1[{i}] is {direction} for {pair}.\nHint: normalise both first (articles and "
                              "punctuation go), then count the tokens they share: P = shared / prediction tokens, "
                              "R = shared / reference tokens, F1 = 2PR / (P + R).")
    return passed(f"exact match and F1 of all {len(pairs)} pairs are right")


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
