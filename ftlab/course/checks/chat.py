"""Checks of exercise 06 (the labels of a conversation by hand).

The learner writes ``make_labels(template, tokenizer, conversation)``; the check calls it on conversations it draws
at check time, with a template that offers only what the exercise lists (``prompt``, ``training_text``,
``end_of_turn``), so ftlab's own mask cannot be asked for the answer, and grades the labels as a whole: no turn or
position is named, only the ideas to revisit.
"""

from __future__ import annotations

import secrets

from ftlab.course.checks.base import mistake, passed, still_none
from ftlab.data.course_sets.dialogues import dialogues
from ftlab.templates.masks import loss_mask


class _PromptsOnly:
    """A template offering what exercise 06 lists: its inference prompts, its training text and end-of-turn token."""

    def __init__(self, template):
        self.prompt, self.training_text = template.prompt, template.training_text
        self.end_of_turn = template.end_of_turn

    def __getattr__(self, name):
        raise AttributeError(f"this check's template offers only prompt, training_text and end_of_turn, not "
                             f"{name!r}: build the labels from those three")


def _fresh_conversations() -> list[list[dict]]:
    """Conversations the learner has not seen, drawn now: some with a system turn, some without."""
    rows = [row["messages"] for row in dialogues(12, eval_size=1, seed=secrets.randbelow(10**6))[0]]
    with_system = [m for m in rows if m[0]["role"] == "system"]
    without = [m for m in rows if m[0]["role"] != "system"]
    return (with_system[:2] + without[:2]) or rows[:4]


def check_chat_labels(template, tokenizer, make_labels) -> bool:
    """Exercise 06: ``make_labels(template, tokenizer, conversation)`` gives one label per token of
    ``template.training_text(conversation)``: the token id where it carries loss, else -100, as the trainer's mask."""
    still_none("make_labels", make_labels)
    if not callable(make_labels):
        mistake(f"make_labels is a {type(make_labels).__name__}: it should be a function of (template, tokenizer, "
                "conversation).", "def make_labels(template, tokenizer, conversation): ... return labels")
    conversations, wrong = _fresh_conversations(), 0
    for messages in conversations:
        expected = [token.id if token.loss else -100 for token in loss_mask(template, messages).tokens]
        try:
            got = make_labels(_PromptsOnly(template), tokenizer, messages)
        except Exception as error:  # the learner's code: say what broke, in their terms
            mistake(f"make_labels(template, tokenizer, conversation) raised {type(error).__name__}: {error}",
                    "build the labels of the conversation it is given from template.prompt, template.training_text "
                    "and template.end_of_turn")
        got = got.tolist() if hasattr(got, "tolist") else list(got) if got is not None else None
        wrong += got != expected
    if wrong:
        mistake(f"on {wrong} of the {len(conversations)} conversations drawn just now, your labels are not the "
                "trainer's.", "the mask of chapter 06: system and user turns carry no loss; every assistant turn "
                "does, from where its inference prompt (template.prompt) ends through its end-of-turn token; a label "
                "is the token's own id there and -100 elsewhere, one per token of template.training_text")
    return passed(f"your labels are the trainer's on {len(conversations)} conversations drawn just now: loss on every "
                  "assistant turn, each with its end-of-turn token, and on nothing else")
