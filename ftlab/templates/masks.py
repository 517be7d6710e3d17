"""Which tokens carry the loss, token by token: derived from the template's own text, and drawn.

In multi-turn chat SFT the model reads the whole conversation but learns only the assistant's turns:
every assistant answer and the end-of-turn token that closes it carry loss (so the model learns both
what to say and when to stop), while system and user turns, and the role headers the template writes,
are context only. ``encode_rows`` derives that mask from the rendered text (``Template.encode`` and
``Template.format`` give it to the trainer), and refuses a template or tokenizer for which the tokens of an
inference prompt would differ from the training tokens before its answer.

``loss_mask(template, messages)`` lays the very ids and mask the trainer gets out token by token, with the
turn each token belongs to: it prints as one line per turn and renders in a notebook as coloured tokens.
``marked`` is the one way ftlab draws a mask as text (``Template.show`` and ``LossMask`` use it): the
tokens in order, those that carry loss inside ⟦ ⟧.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass

WAY_OUT = ("Pass a template that does: Template.chat(tokenizer, chat_template=...) (ftlab.templates.CHAT_TEMPLATE "
           "is TinyLlama's format), or use Template.alpaca(tokenizer)")


class TemplateError(ValueError):
    """A chat template with which training and inference would not see the same text; says why and what to do."""


# ---------------------------------------------------------------------------- where the loss falls
def loss_spans(messages, text: str, prompts: list[str], specials: list[str], every_turn: bool = False):
    """Where the loss falls in a chat ``text``, in characters: each answer from its prompt's end to its end of turn.

    ``prompts`` are the inference prompts before each answer, ``specials`` the tokenizer's special tokens.
    Returns ``(spans, ends)``; ``ends`` (with ``every_turn``) says where each turn ends, after the end-of-turn
    token that closes it: the same derivation, so a turn's end and its answer's end agree.
    """
    spans, ends, at, prompts = [], [], 0, iter(prompts)
    for turn, message in enumerate(messages):
        content = message["content"].strip()
        if message["role"] == "assistant":
            prompt = next(prompts)
            if not text.startswith(prompt):
                raise TemplateError(
                    f"this chat template does not write the prompt of assistant turn {turn + 1} as the beginning "
                    "of the training text, so the model would train on a context it never sees when it answers "
                    f"(prompt ends {prompt[-40:]!r}; training text there reads "
                    f"{text[len(prompt) - 40:len(prompt)]!r}). {WAY_OUT}.")
            found = text.find(content, len(prompt))
            if found < 0:
                raise TemplateError(f"this chat template changes the text of assistant turn {turn + 1}, so its "
                                    f"tokens cannot be told from the prompt. {WAY_OUT}.")
            at = _end_of_turn(text, found + len(content), turn, specials)
            spans.append((len(prompt), at))
        elif every_turn:
            found = text.find(content, at)
            at = _end_of_turn(text, found + len(content) if found >= 0 else at, turn, specials)
        ends.append(at)
    return spans, ends if every_turn else []


def _end_of_turn(text: str, start: int, turn: int, specials: list[str]) -> int:
    """Where the end-of-turn token after an answer ends: the first special token after the answer."""
    found = [(text.find(token, start), token) for token in specials]
    found = [(at, token) for at, token in found if at >= 0]
    if not found:
        raise TemplateError(f"this chat template writes no end-of-turn token after turn {turn + 1}, so "
                            f"the model would never learn to stop. {WAY_OUT}.")
    at, token = min(found)
    return at + len(token)


@contextmanager
def _refusal_names_row(number: int | None):
    try:
        yield
    except TemplateError as error:
        if number is None:
            raise
        raise TemplateError(f"row {number}: {error}") from error


def encode_rows(tokenizer, conversations, texts, prompts, specials, max_length=None, every_turn=False,
                first_row=None) -> list[tuple[list[int], list[int], list[int]]]:
    """``(ids, mask, turn_ends)`` for each conversation, its training text and its answers' prompts, truncated to
    ``max_length`` as the trainer does. ``specials=None`` means an Alpaca text: the loss is on what follows the
    one prompt. ``turn_ends`` (with ``every_turn``): the number of tokens up to the end of each turn.

    One tokenizer call for all the texts and the text before each span edge (each distinct prefix once): the
    mask starts where the prompt's own tokens end, and a boundary the tokenizer merges across is refused, so
    the ids of each answer's inference prompt are exactly the ids before it. With ``first_row`` (the first
    conversation's row number) a refusal names its row.
    """
    layouts = []
    for number, (messages, text, before) in enumerate(zip(conversations, texts, prompts, strict=True),
                                                      start=first_row or 1):
        with _refusal_names_row(number if first_row else None):
            layouts.append(([(len(before[0]), len(text))], []) if specials is None
                           else loss_spans(messages, text, before, specials, every_turn))
    prefixes = list(dict.fromkeys(text[:at] for text, (spans, ends) in zip(texts, layouts, strict=True)
                                  for at in [*(at for span in spans for at in span), *ends] if at < len(text)))
    everything = [*texts, *prefixes]
    tokenized = tokenizer(everything, add_special_tokens=False)["input_ids"] if everything else []
    known = dict(zip(prefixes, tokenized[len(texts):], strict=True))
    rows = []
    for number, (text, ids, (spans, ends)) in enumerate(zip(texts, tokenized[:len(texts)], layouts, strict=True),
                                                        start=first_row or 1):
        mask = [0] * len(ids)
        for start, end in spans:
            with _refusal_names_row(number if first_row else None):
                first, last = (_count_prefix(text[:at], known.get(text[:at], ids), ids) for at in (start, end))
            mask[first:last] = [1] * (last - first)
        rows.append((ids[:max_length], mask[:max_length], [len(known.get(text[:at], ids)) for at in ends]))
    return rows


def _count_prefix(prefix: str, prefix_ids: list[int], ids: list[int]) -> int:
    """How many of ``ids`` the text ``prefix`` (tokenized: ``prefix_ids``) covers; refuses a boundary the tokenizer
    merges across."""
    if ids[:len(prefix_ids)] != prefix_ids:
        raise TemplateError(f"the tokenizer merges the end of the prompt {prefix[-30:]!r} with what follows, so the "
                            f"prompt's tokens at inference differ from the training tokens. {WAY_OUT}.")
    return len(prefix_ids)


# ---------------------------------------------------------------------------- drawing it
def marked(pieces: Iterable[tuple[str, bool]], separator: str = "") -> str:
    """Pieces of text (tokens, or runs of tokens) in order, those that carry loss inside ⟦ ⟧."""
    return separator.join(f"⟦{text}⟧" if carries else text for text, carries in pieces)


def loss_runs(ids, mask) -> list[tuple[list[int], bool]]:
    """The ids cut into runs that all carry loss or all do not (a run decodes whole: multi-byte text stays intact)."""
    runs: list[tuple[list[int], bool]] = []
    for token, carries in zip(ids, mask, strict=True):
        if runs and runs[-1][1] == bool(carries):
            runs[-1][0].append(token)
        else:
            runs.append(([token], bool(carries)))
    return runs


def carry_line(loss: int, total: int) -> str:
    return f"-- {loss} of {total} tokens carry loss (inside ⟦ ⟧)"


@dataclass(frozen=True)
class MaskedToken:
    position: int
    id: int
    text: str  # the token's text, with spaces shown as · and line breaks as ↵
    turn: int  # 1-based turn of the conversation it belongs to (its header and its end-of-turn token included)
    role: str
    loss: bool


@dataclass(frozen=True, repr=False)
class LossMask:
    """A conversation's tokens with their turn, role and loss flag: one line per turn as text, coloured in Jupyter."""

    tokens: tuple[MaskedToken, ...]

    def __repr__(self) -> str:
        return str(self)

    def turns(self) -> list[tuple[int, str, list[MaskedToken]]]:
        """``(turn, role, tokens)`` for each turn, in order."""
        grouped: dict[int, list[MaskedToken]] = {}
        for token in self.tokens:
            grouped.setdefault(token.turn, []).append(token)
        return [(turn, tokens[0].role, tokens) for turn, tokens in grouped.items()]

    @property
    def loss_tokens(self) -> int:
        return sum(t.loss for t in self.tokens)

    def loss_by_role(self) -> dict[str, tuple[int, int]]:
        """Per role: (tokens carrying loss, tokens)."""
        counts: dict[str, tuple[int, int]] = {}
        for token in self.tokens:
            loss, total = counts.get(token.role, (0, 0))
            counts[token.role] = (loss + token.loss, total + 1)
        return counts

    def __str__(self) -> str:
        lines = []
        for turn, role, tokens in self.turns():
            shown = marked(((t.text, t.loss) for t in tokens), " ")
            lines.append(f"turn {turn} {role:<9} {sum(t.loss for t in tokens):>3}/{len(tokens):<3} {shown}")
        lines.append(f"{carry_line(self.loss_tokens, len(self.tokens))}: the assistant's answers and their "
                     "end-of-turn tokens")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"system": "#eee", "user": "#e3ecf7", "assistant": "#fdf1d6"}
        rows = []
        for turn, role, tokens in self.turns():
            cells = "".join(
                f'<span title="position {t.position}, id {t.id}" style="background:{colours.get(role, "#eee")};'
                f'padding:1px 2px;margin:1px;border-radius:3px;font-family:monospace;'
                f'{"border-bottom:3px solid #c0392b;font-weight:bold" if t.loss else "color:#555"}">'
                f'{html.escape(t.text)}</span>' for t in tokens)
            rows.append(f"<div><b>turn {turn} · {role}</b> ({sum(t.loss for t in tokens)}/{len(tokens)} with loss) "
                        f"{cells}</div>")
        return ("".join(rows) + f"<div><i>{self.loss_tokens} of {len(self.tokens)} tokens carry loss "
                "(underlined red): the assistant's answers and their end-of-turn tokens</i></div>")


def _visible(text: str) -> str:
    return text.replace(" ", "·").replace("\n", "↵")


def loss_mask(template, messages, max_length: int | None = None) -> LossMask:
    """The tokens of ``messages`` (a conversation, or a row with ``messages``) with turn, role and loss flag.

    The ids and flags are ``template.encode(messages, max_length)``'s, the ones the trainer gets. A turn
    runs from its role header to its end-of-turn token; a BOS token up front counts with the first turn.
    """
    if template.style != "chat":
        raise ValueError("loss_mask shows the turns of a chat template; for an Alpaca template use template.show(row)")
    messages = list(messages["messages"] if isinstance(messages, dict) else messages)
    # the trainer's ids and mask, and where each turn ends, from one derivation (Template's)
    ids, mask, bounds = template._encode_rows([messages], max_length, every_turn=True)[0]
    tokenizer = template.tokenizer
    tokens, turn = [], 0
    for position, (token, carries) in enumerate(zip(ids, mask, strict=True)):
        while turn < len(bounds) - 1 and position >= bounds[turn]:
            turn += 1
        tokens.append(MaskedToken(position, token, _visible(tokenizer.decode([token])), turn + 1,
                                  messages[turn]["role"], bool(carries)))
    return LossMask(tuple(tokens))
