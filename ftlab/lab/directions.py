"""Which way a metric is better: higher for scores, lower for losses, declared for anything else.

One rule for every "best" the lab names: a sweep's ranking, best value, ``best()`` and combination phase
(``sweeps``), an effect's "better" or "worse" (``effects``), a comparison's best round (``table``) and the
compare view's bars (``widgets``). Scores are better higher: exact match, accuracy, F1, BLEU, ROUGE and
every other score of ``ftlab.evaluation.metrics.SCORES`` (a test keeps the two lists together); losses and
perplexity are better lower. A name this rule does not know is refused by name unless its direction is
declared (``higher_is_better=True`` or ``False``): a guess once named the worst learning rate of seed 004's
sweep by accuracy the best one. Names are read as the table writes them too ("eval loss" is ``eval_loss``),
and a split's prefix is the metric's own direction (``eval_accuracy`` is an accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

HIGHER = ("exact_match", "f1", "bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "answer_accuracy", "accuracy",
          "reward_margin")
LOWER = ("loss", "train_loss", "eval_loss", "eval_loss_before", "perplexity", "repeated_3grams")
HIGHER_ENDINGS = ("accuracy", "exact_match", "_f1")  # overall_accuracy (seed 004's metric), squad_exact_match
LOWER_ENDINGS = ("_loss", "perplexity")
SPLITS = ("eval_", "test_", "validation_", "train_")  # how trainers name a metric on a split: eval_accuracy


def known(metric: str) -> bool | None:
    """True when ``metric`` is better higher, False when lower, None when this rule does not know it."""
    name = metric.strip().replace(" ", "_")
    for candidate in (name, *(name[len(s):] for s in SPLITS if name.startswith(s))):
        if candidate in HIGHER or candidate.endswith(HIGHER_ENDINGS):
            return True
        if candidate in LOWER or candidate.endswith(LOWER_ENDINGS):
            return False
    return None


@dataclass(frozen=True)
class Direction:
    """Which way ``metric`` improves: ``higher`` True for a score, False for a loss."""

    metric: str
    higher: bool

    @property
    def words(self) -> str:
        return "higher is better" if self.higher else "lower is better"

    def best(self, items, key=None):
        """The best of ``items`` (by ``key``): the highest score or the lowest loss."""
        return (max if self.higher else min)(items, key=key)

    def worst(self, items, key=None):
        return (min if self.higher else max)(items, key=key)

    def beats(self, value: float, other: float) -> bool:
        """Whether ``value`` is strictly better than ``other``."""
        return value > other if self.higher else value < other

    def __str__(self) -> str:
        return f"{self.metric}: {self.words}"


def direction(metric: str, higher_is_better: bool | None = None) -> Direction:
    """The direction of ``metric``: the rule's, or the one declared for a metric the rule does not know.

    Refuses a metric the rule does not know and nobody declared, and a declaration that contradicts the
    rule (``eval_loss`` declared better higher would rank the worst round best).
    """
    rule = known(metric)
    if higher_is_better is not None and not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be True, False or None, not {higher_is_better!r}")
    if rule is None and higher_is_better is None:
        raise ValueError(f"which way is {metric!r} better? ftlab knows scores (better higher: {', '.join(HIGHER)}, "
                         f"or a name ending in 'accuracy') and losses (better lower: {', '.join(LOWER)}); for "
                         f"{metric!r} say it: higher_is_better=True for a score, False for a loss or an error rate")
    if rule is not None and higher_is_better is not None and higher_is_better != rule:
        raise ValueError(f"higher_is_better={higher_is_better} for {metric!r}, but {metric!r} is better "
                         f"{'higher' if rule else 'lower'}: leave higher_is_better out")
    return Direction(metric, rule if rule is not None else higher_is_better)
