"""Talking with a fine-tuned model: a conversation that keeps its history, streamed as it is written.

``Chat(model, tokenizer)`` keeps the conversation as chat turns and builds every prompt with the same
template the model trained with (``Template.prompt``: the whole history, then the assistant's header),
so turn three is asked exactly as the training text wrote it. Each answer streams as it comes (word by
word, through transformers' ``TextStreamer``; ``on_text=`` takes the pieces instead of printing) and
ends at the template's end-of-turn token. ``Reply`` says whether the model stopped by itself and how
much of the answer repeats itself. Before anything is generated, every turn is checked (a role the
template knows, text for content: ``ChatError`` names the turn), and the prompt must leave the answer
room in the model's positions: the oldest turns are forgotten, with a warning that says so, and a
message too long on its own is refused with its length and the model's.

``compare_decoding`` measures repetition (the share of repeated word 3-grams in long answers, seed
002's repeated poem) and the answers that must stay right, for several decoding settings side by side,
and names the setting that cuts repetition the most while keeping (nearly) every right answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftlab.console.lines import warn
from ftlab.data.formats import ROLES
from ftlab.evaluation.generation import (
    decode_answer,
    decoding_settings,
    generate,
    repeated_share,
    with_answer_penalty,
)
from ftlab.templates.template import Template


class ChatError(ValueError):
    """A message or a turn of ``Chat.history`` that the chat cannot use; the message names it and the fix."""


def check_turns(turns: list) -> None:
    """Every turn a dict with a known role and text content; ``ChatError`` names the first that is not."""
    for number, turn in enumerate(turns):
        where = f"chat.history[{number}]"
        if not isinstance(turn, dict):
            raise ChatError(f"{where} is {turn!r}: each turn is {{'role': 'user', 'content': 'text'}}; fix it, or "
                            "chat.reset() to start again")
        if turn.get("role") not in ROLES:
            raise ChatError(f"{where}: role {turn.get('role')!r} is not one of {', '.join(ROLES)} (the only roles a "
                            "chat template writes); fix the turn, or chat.reset() to start again")
        if not isinstance(turn.get("content"), str):
            raise ChatError(f"{where} ({turn['role']}): its content is {turn.get('content')!r}, not text; give the "
                            "turn its text, or chat.reset() to start again")


@dataclass
class Reply:
    text: str
    new_tokens: int
    stopped: bool  # the model ended its turn itself (end-of-turn token); False: it hit max_new_tokens
    repeated: float  # share of the answer's word 3-grams that already occurred in it (0: none repeats)

    def __str__(self) -> str:
        flags = [] if self.stopped else ["did not stop"]
        flags += [f"{self.repeated:.0%} repeated 3-grams"] if self.repeated else []
        return self.text + (f"  [{', '.join(flags)}]" if flags else "")


def _streamer(tokenizer, on_text):
    """A streamer that hands each finished piece of the answer (whole words) to ``on_text`` during ``generate``."""
    from transformers import TextStreamer

    class Streamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                on_text(text)

    return Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _print(text: str) -> None:
    print(text, end="", flush=True)


class Chat:
    """A conversation with ``model`` in its own chat format. ``ask`` adds a turn; ``history`` holds them all.

    ``system``: a system turn to start with. ``preset``: ``ftlab.evaluation.generation.DECODING``'s ``"chat"``
    (sampling with a repetition penalty) by default, ``"eval"`` for the same answer every time;
    ``options`` override its settings (``answer_repetition_penalty=``, ``repetition_penalty=``, ...).
    ``seed`` makes sampled answers repeatable.
    """

    def __init__(self, model, tokenizer, template=None, system: str | None = None, preset: str = "chat",
                 max_new_tokens: int = 128, seed: int | None = None, **options):
        self.model, self.tokenizer = model, tokenizer
        self.template = template or Template.chat(tokenizer)
        decoding_settings(preset, self.template, max_new_tokens, **options)  # an unknown preset is refused here
        self.preset, self.max_new_tokens, self.options, self.seed = preset, max_new_tokens, options, seed
        self.history: list[dict] = [{"role": "system", "content": system}] if system else []

    def __repr__(self) -> str:
        turns = "\n".join(f"  {m['role']:>9}: {m['content']}" for m in self.history)
        return f"Chat({len(self.history)} turns, preset {self.preset!r})" + (f"\n{turns}" if turns else "")

    def reset(self) -> None:
        """Forget every turn but the system turn."""
        self.history = [m for m in self.history[:1] if m["role"] == "system"]

    def ask(self, message: str, stream: bool = True, on_text=None, **options) -> Reply:
        """Add the user's ``message``, answer it from the whole history, and add the answer to it.

        The answer is printed as it is written (``stream=False``: not printed; ``on_text``: a function
        that gets each piece instead). ``options`` override the decoding settings for this answer only.
        """
        import torch

        if not isinstance(message, str) or not message.strip():
            raise ChatError(f"the message must be non-empty text, got {message!r}")
        check_turns(self.history)
        settings = decoding_settings(self.preset, self.template, self.max_new_tokens, **{**self.options, **options})
        turns, batch = self._prompt_that_fits([*self.history, {"role": "user", "content": message}],
                                              settings["max_new_tokens"])
        batch = batch.to(next(self.model.parameters()).device)
        streamer = _streamer(self.tokenizer, on_text or _print) if stream or on_text else None
        if self.seed is not None:
            torch.manual_seed(self.seed + len(turns))  # repeatable, and not the same draw for every turn
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                settings = with_answer_penalty(settings, batch["input_ids"].shape[1])
                output = self.model.generate(**batch, **settings, streamer=streamer)
        finally:
            self.model.train(was_training)
        if streamer is not None and on_text is None:
            print()
        text, length, stopped = decode_answer(self.tokenizer, output[0, batch["input_ids"].shape[1]:],
                                              self.template.stop_token_ids)
        self.history = [*turns, {"role": "assistant", "content": text}]  # only once the answer exists
        return Reply(text, length, stopped, repeated_share(text))

    def _prompt_that_fits(self, turns: list, answer_tokens: int):
        """The turns (the oldest forgotten if need be) and their tokenized prompt, leaving ``answer_tokens`` positions
        for the answer in the model's ``max_position_embeddings``; a new message too long alone is refused."""
        positions = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)

        def tokenized(kept):
            return self.tokenizer(self.template.prompt(kept), add_special_tokens=False, return_tensors="pt")

        batch = tokenized(turns)
        if not isinstance(positions, int) or batch["input_ids"].shape[1] + answer_tokens <= positions:
            return turns, batch
        system = [t for t in turns[:1] if t["role"] == "system"]
        alone = tokenized([*system, turns[-1]])["input_ids"].shape[1]
        if alone + answer_tokens > positions:
            raise ChatError(f"the message is {alone:,} tokens as the model reads it{' (with the system turn)' if system else ''}, "
                            f"and this model reads {positions:,} positions at most (max_position_embeddings), "
                            f"{answer_tokens:,} of them kept for the answer (max_new_tokens): it has room for a prompt of "
                            f"{max(positions - answer_tokens, 0):,} tokens. Shorten the message, or lower max_new_tokens.")
        before, earlier = len(turns), turns[len(system):-1]
        while earlier and tokenized([*system, *earlier, turns[-1]])["input_ids"].shape[1] + answer_tokens > positions:
            earlier = earlier[1:]
            while earlier and earlier[0]["role"] != "user":  # a conversation starts with the user's turn
                earlier = earlier[1:]
        kept = [*system, *earlier, turns[-1]]
        warn(f"the conversation no longer fits the model's {positions:,} positions beside a {answer_tokens:,}-token answer: "
             f"the chat forgot its {before - len(kept)} oldest turn(s){' (the system turn is kept)' if system else ''}. "
             "chat.reset() starts afresh; a lower max_new_tokens keeps more turns.", stacklevel=3)
        return kept, tokenized(kept)


@dataclass
class DecodingComparison:
    """Per decoding setting: repetition in long answers, answers that stopped, and right answers kept."""

    rows: list[dict] = field(default_factory=list)  # name, settings, repeated, stopped, right, asked, examples
    best: str | None = None  # the least repetition among the settings that keep (nearly) the most right answers
    keep: float = 0.9  # the share of the most right answers a setting must keep to be chosen

    def __str__(self) -> str:
        lines = [f"{'setting':<28} {'repeated 3-grams':>16} {'stopped':>8} {'right answers':>14}"]
        for row in self.rows:
            right = f"{row['right']}/{row['asked']}" if row["asked"] else "-"
            stopped = "-" if row["stopped"] is None else f"{row['stopped']:.0%}"
            lines.append(f"{row['name']:<28} {row['repeated']:>16.0%} {stopped:>8} {right:>14}")
        if self.best:
            settings = ", ".join(f"{k}={v}" for k, v in self.row(self.best)["settings"].items()) or "greedy"
            named = self.best if settings == self.best else f"{self.best} ({settings})"  # a name that says it once
            lines.append(f"least repetition while keeping {self.keep:.0%} of the most right answers: {named}")
        return "\n".join(lines)

    def row(self, name: str) -> dict:
        return next(row for row in self.rows if row["name"] == name)


def compare_decoding(model, tokenizer, settings: dict[str, dict], long_prompts: list, conversations=(),
                     references=(), long_tokens: int = 40, keep: float = 0.9, template=None) -> DecodingComparison:
    """Measure each of ``settings`` (name -> ``generate`` options over greedy decoding) on two things.

    Repetition: the mean share of repeated word 3-grams in answers to ``long_prompts`` that must run to
    ``long_tokens`` tokens (``min_new_tokens``: a long answer, like seed 002's poem). Right answers: the
    answers to ``conversations`` (lists of turns) equal to ``references``, since a setting that stops
    loops can also forbid a right answer. ``best`` is the setting with the least repetition among those
    that keep at least ``keep`` of the most right answers any setting got. Greedy throughout, so every
    figure is repeatable.
    """
    if len(conversations) != len(references):
        raise ValueError(f"{len(conversations)} conversations but {len(references)} references: give one each")
    result = DecodingComparison(keep=keep)
    for name, options in settings.items():
        long = generate(model, tokenizer, list(long_prompts), "eval", long_tokens + 8, progress=False,
                        template=template, min_new_tokens=long_tokens, **options)
        answers = generate(model, tokenizer, list(conversations), "eval", 32, progress=False, template=template,
                           **options) if conversations else []
        result.rows.append({
            "name": name, "settings": options,
            "repeated": sum(repeated_share(g.text) for g in long) / max(len(long), 1),
            "stopped": sum(g.stopped for g in answers) / len(answers) if answers else None,
            "right": sum(g.text == ref for g, ref in zip(answers, references, strict=True)), "asked": len(answers),
            "examples": [g.text for g in long[:2]]})
    most_right = max(row["right"] for row in result.rows)
    keeping = [row for row in result.rows if row["right"] >= keep * most_right]
    result.best = min(keeping, key=lambda row: row["repeated"])["name"]
    print(result)
    return result
