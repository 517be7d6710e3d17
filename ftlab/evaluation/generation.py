"""Asking a model questions the way it was trained: same chat template, batched, stopping at end of turn.

The prompt is built by the model's own chat template with ``add_generation_prompt=True``: exactly the
training text up to where the answer begins (a mismatch here cost one seed learner half its
accuracy), and generation stops at the template's end-of-turn token (``<|im_end|>`` for ChatML) or eos. Batches are padded on the left, so every answer starts right after its own prompt.
Presets: ``"eval"`` is greedy (the same answer every time, for scoring); ``"chat"`` samples, with a
repetition penalty that keeps a small model from looping; ``"no-repeat"`` is greedy with a stronger one.
Both penalise the answer's own repeats only (ftlab's ``answer_repetition_penalty``): transformers'
``repetition_penalty`` and ``no_repeat_ngram_size`` count the prompt too, and in a chat the prompt is the
history, so a name the answer must repeat gets penalised (chapter 06 measures the three side by side). Each
``Generation`` says whether the model stopped by itself and whether the text repeats itself (seed
002's poem came out repeated). A conversation that keeps its history and streams: ``ftlab.evaluation.chat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftlab.console.lines import track
from ftlab.data.formats import prompt_turns
from ftlab.templates.template import Template

DECODING = {  # decoding settings by name (the round presets are ftlab.config.PRESETS)
    "eval": dict(do_sample=False, repetition_penalty=1.0),
    "chat": dict(do_sample=True, temperature=0.7, top_p=0.9, answer_repetition_penalty=1.3),
    "no-repeat": dict(do_sample=False, answer_repetition_penalty=1.6),
}
FTLAB_OPTIONS = {"answer_repetition_penalty"}  # decoding options ftlab adds to transformers' own


@dataclass
class Generation:
    prompt: str
    text: str
    new_tokens: int
    stopped: bool  # the model ended its turn (end-of-turn token or eos); False means it hit max_new_tokens
    repetitive: bool  # the same n-grams over and over: a sign of degenerate decoding

    def __str__(self) -> str:
        flags = [] if self.stopped else ["did not stop"]
        flags += ["repetitive"] if self.repetitive else []
        return self.text + (f"  [{', '.join(flags)}]" if flags else "")


def repeated_share(text: str, n: int = 3) -> float:
    """Share of the text's n-grams (words; characters for CJK) that already occurred earlier in it."""
    units = re.findall(r"[\u3400-\u9fff]|\w+", text.lower())
    grams = [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]
    return 0.0 if not grams else 1 - len(set(grams)) / len(grams)


def is_repetitive(text: str, threshold: float = 0.4) -> bool:
    return repeated_share(text) >= threshold


def decoding_settings(preset: str, template, max_new_tokens: int, **options) -> dict:
    """``model.generate`` keywords: the preset's, then ``options``, stopping at the template's end of turn."""
    if preset not in DECODING:
        raise ValueError(f"unknown generation preset {preset!r}; choose one of {sorted(DECODING)}")
    # the template's end-of-turn token (<|im_end|>, <|eot_id|>, ...) and eos both end an answer
    return {**DECODING[preset], **options, "max_new_tokens": max_new_tokens,
            "eos_token_id": template.stop_token_ids, "pad_token_id": template.tokenizer.pad_token_id}


def with_answer_penalty(settings: dict, prompt_length: int) -> dict:
    """``settings`` for ``model.generate``, with ``answer_repetition_penalty`` turned into a logits processor
    that ignores the first ``prompt_length`` positions (the prompt, padding included)."""
    settings = dict(settings)
    penalty = settings.pop("answer_repetition_penalty", None)
    if penalty is not None and penalty != 1.0:
        from transformers import LogitsProcessorList
        from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

        processor = RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=prompt_length)
        settings["logits_processor"] = LogitsProcessorList([*settings.get("logits_processor", []), processor])
    return settings


def decode_answer(tokenizer, tokens, stops: list[int]) -> tuple[str, int, bool]:
    """The answer in newly generated ``tokens``: its text, its length up to the first stop, and whether it stopped."""
    import torch

    ended = torch.isin(tokens, torch.tensor(stops, device=tokens.device)).nonzero()
    length = int(ended[0]) + 1 if len(ended) else len(tokens)
    return tokenizer.decode(tokens[:length], skip_special_tokens=True).strip(), length, bool(len(ended))


def generate(model, tokenizer, prompts: list, preset: str = "eval", max_new_tokens: int = 64,
             batch_size: int = 16, progress: bool | None = None, template=None, **options) -> list[Generation]:
    """Answers to ``prompts`` (strings, or lists of chat turns), in order, with stop and repetition flags.

    ``template`` must be the one the model was trained with (default: the chat template).
    ``options`` override the preset's generation settings (``temperature``, ``repetition_penalty``,
    ``no_repeat_ngram_size``, ftlab's ``answer_repetition_penalty``, ...). A progress line appears once the
    batches done say generating will take more than a few seconds (``ftlab.console.lines.worth_showing``: one
    batch of ``batch_size`` prompts shows none); ``progress=False`` hides it.
    """
    import torch

    template = template or Template.chat(tokenizer)
    stops = template.stop_token_ids
    settings = decoding_settings(preset, template, max_new_tokens, **options)
    device = next(model.parameters()).device
    results: list[Generation] = []
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    starts = range(0, len(prompts), batch_size)
    try:
        for start in track(starts, "generating", progress is not False, unit="batches"):
            chats = [prompt_turns(p) for p in prompts[start:start + batch_size]]
            texts = [template.prompt(chat) for chat in chats]
            # the template already wrote the BOS token: adding special tokens again would double it
            batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)
            with torch.no_grad():
                output = model.generate(**batch, **with_answer_penalty(settings, batch["input_ids"].shape[1]))
            for chat, tokens in zip(chats, output[:, batch["input_ids"].shape[1]:], strict=True):
                text, length, stopped = decode_answer(tokenizer, tokens, stops)
                results.append(Generation(chat[-1]["content"], text, length, stopped, is_repetitive(text)))
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return results


def answers(model, tokenizer, prompts: list, preset: str = "eval", max_new_tokens: int = 64, **options) -> list[str]:
    """Just the answer texts of ``generate`` (same options, ``template=`` included)."""
    return [g.text for g in generate(model, tokenizer, prompts, preset, max_new_tokens, **options)]


def chat(model, tokenizer, prompt, max_new_tokens: int = 128, preset: str = "chat", **options) -> str:
    """One answer to one prompt (a string, or a list of chat turns); ``ftlab.Chat`` keeps a history and streams."""
    return answers(model, tokenizer, [prompt], preset, max_new_tokens, **options)[0]
