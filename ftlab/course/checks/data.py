"""Checks of exercise 01 (clean data, the prompt the model sees, the label mask by hand)."""

from __future__ import annotations

from collections import Counter

from ftlab.course.checks.base import fail, mistake, passed, still_none
from ftlab.data import dedup, validate


def check_rows_fixed(fixed_rows, original_rows) -> bool:
    """Every row of ``fixed_rows`` passes validation, and no row was lost on the way."""
    still_none("fixed_rows", fixed_rows)
    if not isinstance(fixed_rows, list):
        fail("fixed_rows", fixed_rows, "a list of row dicts: the original rows with the broken ones repaired")
    if len(fixed_rows) != len(original_rows):
        fail("len(fixed_rows)", len(fixed_rows), f"{len(original_rows)}: repair the broken rows, don't drop them",
              "dropping is what strict=False does; here each row is someone's work")
    findings = validate(fixed_rows, file="fixed_rows")
    if findings:
        fail("ftlab.data.validate(fixed_rows)", [str(f) for f in findings[:3]], "an empty list")
    return passed(f"all {len(fixed_rows)} rows are valid and none was lost")


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


def check_prompt_matches(template, row, prompt, text) -> bool:
    """Exercise 01: ``prompt`` and ``text``: the inference prompt and training text of ``row``."""
    messages = row["messages"]
    still_none("text", text)
    still_none("prompt", prompt)
    answer = messages[-1]["content"]
    if text != template.training_text(messages):
        if answer not in str(text):
            mistake("text does not contain the answer.", "the training text is the whole conversation, answer included")
        mistake("text is not the text the model trains on for this row.",
               "the template turns a row into one text: special tokens, role tags and the end-of-turn token "
               "after the answer (template.show prints it)")
    if prompt != template.prompt(messages):
        if answer in str(prompt):
            mistake("prompt contains the answer: at inference the model has to write it.",
                   "the prompt is the conversation before the answer")
        mistake("prompt is not what the model is given at inference.",
               "the prompt must end exactly where the model starts writing: with the assistant's role tag, as the "
               "training text has it before the answer")
    return passed(f"the prompt is the training text up to the answer; the model learns {text[len(prompt):]!r}")


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
