"""The loss mask of a conversation, token by token: which turn each token belongs to, and whether it carries loss.

In multi-turn chat SFT the model reads the whole conversation but learns only the assistant's turns:
every assistant answer and the end-of-turn token that closes it carry loss (so the model learns both
what to say and when to stop), while system and user turns, and the role headers the template writes,
are context only. ``loss_mask(template, messages)`` lays that out token by token from the very ids and
mask the trainer gets (``Template.encode``), so what is shown is what trains. It prints as one line per
turn (loss tokens in ⟦ ⟧) and renders in a notebook as coloured tokens.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


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
            shown = " ".join(f"⟦{t.text}⟧" if t.loss else t.text for t in tokens)
            lines.append(f"turn {turn} {role:<9} {sum(t.loss for t in tokens):>3}/{len(tokens):<3} {shown}")
        lines.append(f"-- {self.loss_tokens} of {len(self.tokens)} tokens carry loss (inside ⟦ ⟧): "
                     "the assistant's answers and their end-of-turn tokens")
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
    ids, mask, bounds = template._encode_rows([messages], max_length, every_turn=True)[0]  # noqa: SLF001
    tokenizer = template.tokenizer
    tokens, turn = [], 0
    for position, (token, carries) in enumerate(zip(ids, mask, strict=True)):
        while turn < len(bounds) - 1 and position >= bounds[turn]:
            turn += 1
        tokens.append(MaskedToken(position, token, _visible(tokenizer.decode([token])), turn + 1,
                                  messages[turn]["role"], bool(carries)))
    return LossMask(tuple(tokens))
