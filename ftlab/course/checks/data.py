"""Checks of exercise 01 (clean data, the prompt the model sees, the label mask by hand)."""

from __future__ import annotations

import secrets
from collections import Counter

from ftlab.course.checks.base import fail, mistake, passed, still_none
from ftlab.data import dedup, validate
from ftlab.data.course_sets.dialogues import dialogues
from ftlab.data.formats import ROLES


def _same_turn(fixed, original) -> bool:
    """A turn kept as its author wrote it: the same content as text, and the same role unless the original's
    was not a chat role (ShareGPT's "human", a "bot"): then renaming it is the repair."""
    if not isinstance(fixed, dict) or not isinstance(original, dict):
        return False
    role = original.get("role")
    same_role = fixed.get("role") == role or (role not in ROLES and fixed.get("role") in ROLES)
    return same_role and str(fixed.get("content")) == str(original.get("content"))


def _is_repair(fixed, original) -> bool:
    """``fixed`` keeps every turn of ``original`` as written, and adds at most the missing answer at the end."""
    if not isinstance(fixed, dict) or not isinstance(fixed.get("messages"), list):
        return False
    before, after = list(original.get("messages", [])), fixed["messages"]
    lacks_answer = not before or not isinstance(before[-1], dict) or before[-1].get("role") != "assistant"
    if lacks_answer and len(after) == len(before) + 1:
        added = after[-1]
        if not (isinstance(added, dict) and added.get("role") == "assistant" and str(added.get("content")).strip()):
            return False
        after = after[:-1]
    return len(after) == len(before) and all(_same_turn(f, o) for f, o in zip(after, before, strict=True))


def check_rows_fixed(fixed_rows, original_rows) -> bool:
    """Exercise 01: ``fixed_rows`` are ``original_rows`` repaired: every row valid, none lost, and each row's
    content as its author wrote it (its roles under their chat names, its contents as text, a missing answer
    added): any five valid rows are not a repair of these."""
    still_none("fixed_rows", fixed_rows)
    if not isinstance(fixed_rows, list):
        fail("fixed_rows", fixed_rows, "a list of row dicts: the original rows with the broken ones repaired")
    if len(fixed_rows) != len(original_rows):
        fail("len(fixed_rows)", len(fixed_rows), f"{len(original_rows)}: repair the broken rows, don't drop them",
             "dropping is what strict=False does; here each row is someone's work")
    findings = validate(fixed_rows, file="fixed_rows")
    if findings:
        fail("ftlab.data.validate(fixed_rows)", [str(f) for f in findings[:3]], "an empty list")
    if not all(_is_repair(f, o) for f, o in zip(fixed_rows, original_rows, strict=True)):
        mistake("fixed_rows are valid, but they are not these rows repaired: a repair keeps what each author wrote "
                "(the questions, the answers, the order of the turns, row by row).",
                "the findings printed above name what to change in each broken row and nothing else: a role's "
                "name, a content's type, a missing turn")
    return passed(f"all {len(fixed_rows)} rows are valid, none was lost, and each says what its author wrote")


def check_dedup_balance(balanced, rows, per_category: int, by: str = "category") -> bool:
    """Exercise 01: ``balanced``: ``rows`` without exact duplicates, at most ``per_category`` rows of each category."""
    still_none("balanced", balanced)
    if not hasattr(balanced, "__len__"):
        mistake(f"balanced is a {type(balanced).__name__}: it should be the rows ftlab.data.balance returns.",
               "balance returns (rows, table)")
    unique, _ = dedup(rows, progress=False)
    texts = [str(row["messages"]) for row in balanced]
    if len(set(texts)) != len(texts):
        mistake(f"balanced holds {len(texts) - len(set(texts))} duplicate rows.",
               "deduplicate before you balance, or the copies take the places of distinct rows")
    available, got = Counter(row[by] for row in unique), Counter(row[by] for row in balanced)
    for category, count in available.items():
        if got.get(category, 0) > min(count, per_category):
            mistake(f"balanced has more {category!r} rows than it may.", "per_category caps each category")
        if got.get(category, 0) < min(count, per_category):
            mistake(f"balanced has fewer {category!r} rows than it could keep.",
                   "a category keeps all its unique rows when it has fewer than per_category; did you sample "
                   "from the deduplicated rows, with the cap the task gives?")
    return passed(f"{len(texts)} unique rows, at most {per_category} per category")


class _TrainingTextOnly:
    """A template that offers only the training text (and its end-of-turn token): the learner's function must cut
    the prompt out of it, not ask ``template.prompt`` for it."""

    def __init__(self, template):
        self.training_text, self.end_of_turn = template.training_text, template.end_of_turn

    def __getattr__(self, name):
        raise AttributeError(f"this check's template offers only training_text and end_of_turn, not {name!r}: "
                             "cut the prompt out of the training text")


def _fresh_chats() -> list[list[dict]]:
    """Rows the learner has not seen: multi-turn, a system turn, an answer whose text the question holds too."""
    drawn = [row["messages"] for row in dialogues(6, eval_size=1, seed=secrets.randbelow(10**6))[0]]
    echo = [{"role": "user", "content": "Repeat after me: 7"}, {"role": "assistant", "content": "7"}]
    return [*drawn[:3], echo]


def check_prompt_matches(template, prompt_from_training) -> bool:
    """Exercise 01: ``prompt_from_training(template, messages)`` cuts the inference prompt out of the training
    text: the text before the last answer. Called on rows it never saw, with a template that offers only the
    training text; its prompts must be exactly ``template.prompt``'s, which proves the two agree."""
    still_none("prompt_from_training", prompt_from_training)
    if not callable(prompt_from_training):
        mistake(f"prompt_from_training is a {type(prompt_from_training).__name__}: it should be a function of "
                "(template, messages).", "def prompt_from_training(template, messages): ... return the prompt")
    for messages in _fresh_chats():
        try:
            got = prompt_from_training(_TrainingTextOnly(template), messages)
        except Exception as error:  # the learner's code: say what broke, in their terms
            mistake(f"prompt_from_training(template, messages) raised {type(error).__name__}: {error}",
                    "template.training_text(messages) is the whole text; the prompt is its beginning")
        text = template.training_text(messages)
        if got == template.prompt(messages):
            continue
        answer = messages[-1]["content"]
        if isinstance(got, str) and answer in got[len(template.prompt(messages)):] and text.startswith(got):
            mistake("on some rows prompt_from_training's prompt runs into the answer: at inference the model has to "
                    "write it.", "the prompt ends where the *last* answer starts, and an answer's text can appear "
                    "earlier in the conversation too")
        mistake("prompt_from_training does not give, for every row it was tried on, the text the model is given "
                "at inference.", "the prompt is the training text up to the last answer, ending exactly where the "
                "model starts writing (with the assistant's role tag): cut it where that answer begins")
    return passed("your prompts, cut out of the training texts, are exactly the inference prompts: the model is "
                  "asked at inference what it saw before each answer in training")


def check_label_mask(template, messages, input_ids, labels) -> bool:
    """Exercise 01: ``labels`` for ``input_ids``: the token id where the loss counts (the answer and its
    end-of-turn token), -100 everywhere else, as ftlab's mask (``Template.encode``) has it."""
    ids, mask = template.encode(messages)
    still_none("labels", labels)
    if list(input_ids) != ids:
        mistake("input_ids are not the tokens of this row's training text.", "leave input_ids as the cell made them")
    if not isinstance(labels, list | tuple) or len(labels) != len(ids):
        mistake(f"labels should be a list with one entry per token of input_ids ({len(ids)} of them).",
               "the trainer pairs input_ids[i] with labels[i]")
    if any(label == 0 for label, m in zip(labels, mask, strict=True) if not m) and -100 not in labels:
        mistake("labels marks the masked tokens with 0: to the loss that is a real token id.",
               "cross-entropy ignores the positions whose label is -100 (ignore_index)")
    eot = template.tokenizer.convert_tokens_to_ids(template.end_of_turn)
    wrong = [i for i, (label, token, m) in enumerate(zip(labels, ids, mask, strict=True)) if label != (token if m else -100)]
    if not wrong:
        return passed(f"your mask matches ftlab's: {sum(mask)} of {len(ids)} tokens carry the loss")
    first = wrong[0]
    start, end = mask.index(1), len(mask) - mask[::-1].index(1)  # the answer's span, its end-of-turn token included
    if first < start:
        mistake("some prompt tokens carry loss: the model would learn to write the user's question.",
               "the loss starts where the prompt (template.prompt) ends")
    if first >= end:
        mistake("tokens after the answer's end-of-turn token carry loss.",
               "the loss covers the answer up to and including its end-of-turn token, not what the template "
               "writes after it")
    if ids[first] == eot and labels[first] == -100:
        mistake("the end-of-turn token after the answer is masked: the model would never learn to stop.",
               "the end-of-turn token belongs to the answer's loss")
    if labels[first] == -100:
        mistake("some answer tokens are masked (-100).", "every token of the answer carries loss")
    mistake("inside the answer, a label is not its own token id.",
           "a label that counts is the token at that position; the model shifts by one position itself")
