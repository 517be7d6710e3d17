"""Checks of exercise 06 (the labels of a conversation by hand)."""

from __future__ import annotations

from ftlab.course.checks.base import mistake, passed, still_none
from ftlab.templates.masks import loss_mask


def _turn_labels_problem(turn: int, role: str, carried: list[bool], expected: list[bool]) -> tuple[str, str] | None:
    """What is wrong with one turn's labels and the idea to revisit (never which positions are right), or None."""
    if role != "assistant":
        if any(carried):
            return (f"turn {turn} ({role}) has labels on {sum(carried)} of its tokens: the model would learn to write "
                    f"the {role}'s words, which it only reads.", "the mask of chapter 06: only the assistant's turns "
                    "carry loss; system and user turns are context")
        return None
    if not any(carried):
        return (f"turn {turn} (assistant) has no labels at all.", "every assistant turn of a conversation trains, "
                "not only the last one")
    if not carried[max(i for i, e in enumerate(expected) if e)]:  # the last loss token closes the answer
        return (f"the end-of-turn token that closes turn {turn} has label -100: the model would never learn to stop, "
                "and a model that does not stop soon repeats itself.", "what the end-of-turn token is for")
    if any(c and not e for c, e in zip(carried, expected, strict=True)):
        return (f"turn {turn} (assistant) has labels before its answer starts, on the role header the template "
                "writes at inference.", "the answer starts where the turn's inference prompt (template.prompt) ends")
    if carried != expected:
        return (f"turn {turn} (assistant) leaves part of its answer without labels.",
                "the labels run from the end of the turn's inference prompt to its end-of-turn token, inclusive")
    return None


def check_chat_labels(template, messages, labels) -> bool:
    """Exercise 06: ``labels`` for ``template.training_text(messages)``: the token id where it carries loss, else -100."""
    still_none("labels", labels)
    labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    tokens = loss_mask(template, messages).tokens
    if len(labels) != len(tokens):
        mistake(f"labels has {len(labels)} values but the training text has {len(tokens)} tokens.",
               "one label per token of template.training_text(messages), tokenized without adding special tokens "
               "(the template already wrote them)")
    odd = [t.position for t, label in zip(tokens, labels, strict=True) if label not in (-100, t.id)]
    if odd:
        mistake(f"{len(odd)} labels are neither -100 nor the token at their position.", "a label is the token itself "
               "where it carries loss (the model shifts by one position itself) and -100 elsewhere")
    for turn in sorted({t.turn for t in tokens}):
        mine = [t for t in tokens if t.turn == turn]
        problem = _turn_labels_problem(turn, mine[0].role, [labels[t.position] != -100 for t in mine],
                                       [t.loss for t in mine])
        if problem:
            mistake(*problem)
    answers = sum(m["role"] == "assistant" for m in messages)
    return passed(f"your labels are the trainer's: loss on all {answers} assistant turns, each with its end-of-turn "
                   "token, and on nothing else")
