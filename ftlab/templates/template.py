"""One template for training and inference: what the model sees, and which tokens carry the loss.

Every model trains and answers in its own chat format: ``Template.chat(tokenizer)`` keeps the
tokenizer's own chat template (TinyLlama's Zephyr style, ChatML for SmolLM2 and Qwen, Llama 3,
Mistral, Gemma, Phi-3, ...). Only a tokenizer with no template at all gets ftlab's default,
``CHAT_TEMPLATE`` (TinyLlama's format), and it is said aloud.

Which tokens carry the loss is derived from the template itself, so it works for templates without
``{% generation %}`` markers (most of them): for every assistant turn, the inference prompt (the
conversation so far, rendered with ``add_generation_prompt=True``) must be the beginning of the
training text, and the loss covers what follows it, up to and including the template's end-of-turn
token. A template for which that does not hold is refused with the reason, since the model would
then train on a context it never sees when it answers (the derivation is ``ftlab.templates.masks.encode_rows``).
The same token ids and mask go to the trainer (as ``input_ids`` and ``assistant_masks``), to ``show``
and to perplexity: one definition.
A default system prompt that a template adds to every conversation (SmolLM2's does) is announced.

``Template.alpaca`` uses the classic Alpaca prompt instead. ``show(row)`` prints what the model sees
with the loss-carrying part in ⟦brackets⟧, and ``check_loss(rows)`` refuses data in which no token
carries loss.
"""

from __future__ import annotations

from ftlab.console.lines import warn
from ftlab.data.errors import DataFormatError, Finding
from ftlab.data.formats import prompt_turns
from ftlab.templates.masks import (
    WAY_OUT,
    TemplateError,
    carry_line,
    encode_rows,
    loss_runs,
    loss_spans,
    marked,
)

# ftlab's default: TinyLlama-1.1B-Chat's format (<|user|>\n...</s>\n<|assistant|>\n...), with a BOS token
# up front and {% generation %} markers (not needed by ftlab, but they let transformers' own
# return_assistant_tokens_mask agree with ftlab's mask, which a test checks)
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|assistant|>\\n' -}}"
    "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)
ROLE_TAGS = ("<|system|>", "<|user|>", "<|assistant|>")

ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                   "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
# a conversation every chat template must handle: it proves the mask and finds the end-of-turn token
PROBE = [{"role": "user", "content": "First question?"}, {"role": "assistant", "content": "First answer."},
         {"role": "user", "content": "Second question?"}, {"role": "assistant", "content": "Second answer."}]
_announced: set = set()


def _say_once(key, message: str) -> None:
    if key not in _announced:
        _announced.add(key)
        print(message)


class Template:
    """How chat rows become training text and inference prompts. Build with ``chat`` or ``alpaca``."""

    def __init__(self, tokenizer, style: str = "chat", chat_template: str | None = None):
        if style not in ("chat", "alpaca"):
            raise ValueError(f"unknown template style {style!r}; use 'chat' or 'alpaca'")
        self.tokenizer, self.style = tokenizer, style
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        if style == "chat" and not self.chat_template:
            self.chat_template = CHAT_TEMPLATE
            _say_once(("default", id(tokenizer)), "Note: this tokenizer has no chat template of its own: ftlab uses "
                      "its default, TinyLlama's <|user|> / <|assistant|> format (ftlab.templates.CHAT_TEMPLATE).")
        # a tokenizer that starts every text with BOS (Llama's) expects it; most chat templates write it
        # themselves, TinyLlama's does not, and then the template's text gets it here
        adds_bos = tokenizer.bos_token_id is not None and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
        self.bos = tokenizer.bos_token if adds_bos else ""
        self.end_of_turn = tokenizer.eos_token
        self.default_system_prompt = None
        if style == "chat":
            self.bos = "" if self._render(PROBE[:1], False).startswith(tokenizer.bos_token or "\0") else self.bos
            self.end_of_turn = self._probe()
            self.default_system_prompt = self._find_default_system_prompt()
            if self.default_system_prompt:
                _say_once(("system", self.chat_template), "Note: this chat template adds a system prompt to every "
                          f"conversation that has none: {self.default_system_prompt!r}. It is part of every training "
                          "row and prompt (Template.show prints it); start a row with a system message to replace it.")

    @classmethod
    def chat(cls, tokenizer, chat_template: str | None = None) -> Template:
        """The tokenizer's own chat template (or ``chat_template``, when given)."""
        return cls(tokenizer, "chat", chat_template)

    @classmethod
    def alpaca(cls, tokenizer) -> Template:
        return cls(tokenizer, "alpaca")

    def __repr__(self) -> str:
        return f"Template.{self.style}({type(self.tokenizer).__name__})"

    @property
    def stop_token_ids(self) -> list[int]:
        """Token ids that end an answer: the template's end-of-turn token and the tokenizer's eos."""
        ids = [self.tokenizer.convert_tokens_to_ids(self.end_of_turn), self.tokenizer.eos_token_id]
        return list(dict.fromkeys(i for i in ids if i is not None))

    # ------------------------------------------------------------------------ text
    def _render(self, turns, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(turns), chat_template=self.chat_template, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def _render_many(self, conversations: list, add_generation_prompt: bool) -> list[str]:
        """``_render`` for many conversations in one call (the same text, without the per-call overhead)."""
        if not conversations or not all(conversations):  # an empty conversation is refused as _render refuses it
            return [self._render(turns, add_generation_prompt) for turns in conversations]
        return list(self.tokenizer.apply_chat_template(conversations, chat_template=self.chat_template,
                                                       tokenize=False, add_generation_prompt=add_generation_prompt))

    @staticmethod
    def _prompt_turns(messages) -> list:
        turns = prompt_turns(messages)
        return turns[:-1] if turns and turns[-1]["role"] == "assistant" else turns

    def prompt(self, messages) -> str:
        """The inference prompt: everything before the answer, ending where the model starts writing."""
        turns = self._prompt_turns(messages)
        if self.style == "chat":
            return self.bos + self._render(turns, True)
        instruction = "\n\n".join(t["content"] for t in turns if t["role"] != "assistant")
        return (self.tokenizer.bos_token or "") + ALPACA_NO_INPUT.format(instruction=instruction)

    def _answer_prompts(self, conversations: list[list]) -> list[list[str]]:
        """Each conversation's inference prompt before each of its answers, rendered in one batch."""
        if self.style == "alpaca":  # one answer, the last turn's
            return [[self.prompt(messages)] for messages in conversations]
        wanted = [self._prompt_turns(messages[:turn]) for messages in conversations
                  for turn, message in enumerate(messages) if message["role"] == "assistant"]
        rendered = iter(self._render_many(wanted, True))
        return [[self.bos + next(rendered) for message in messages if message["role"] == "assistant"]
                for messages in conversations]

    def training_text(self, messages) -> str:
        """The whole text the model trains on for one row: prompt, answer, end of turn."""
        return self._training_texts([list(messages)])[0]

    def _training_texts(self, conversations: list[list]) -> list[str]:
        if self.style == "chat":
            return [self.bos + text for text in self._render_many(conversations, False)]
        return [self.prompt(messages) + messages[-1]["content"] + self.tokenizer.eos_token for messages in conversations]

    def format(self, dataset, loss_on: str = "answers", max_length: int | None = None):
        """Rows for TRL, already tokenized: ``input_ids`` and the mask of loss tokens (``assistant_masks``).

        TRL turns ``assistant_masks`` into labels as they are, so the trainer's loss falls exactly where
        ``encode`` (and ``show``) say; ``loss_on="everything"`` puts it on every token. Rows are cut to
        ``max_length`` tokens as the trainer would cut them. Rows go through ``encode``'s steps a batch at a
        time (one render of the texts, one of the prompts, one tokenizer call), with the same result.
        """
        def tokenized(batch, rows):
            try:
                encoded = self._encode_rows(batch["messages"], max_length, first_row=rows[0] + 1)
            except TemplateError:
                raise
            except Exception as error:  # the chat template itself refuses a conversation (jinja's raise_exception)
                raise self._refused_row(batch["messages"], rows[0] + 1, error) from error
            return {"input_ids": [ids for ids, _, _ in encoded],
                    "assistant_masks": [mask if loss_on == "answers" else [1] * len(ids) for ids, mask, _ in encoded]}

        return dataset.map(tokenized, batched=True, with_indices=True, remove_columns=dataset.column_names,
                           desc=f"{self.style} template")

    def _refused_row(self, conversations, first_row: int, error: Exception) -> TemplateError:
        """The first of ``conversations`` that the chat template refuses on its own, named by its row number."""
        for number, messages in enumerate(conversations, start=first_row):
            try:
                self._training_texts([list(messages)])
            except Exception as alone:
                return TemplateError(f"row {number}: this chat template refuses the conversation ({alone}). Change "
                                     f"the row (its roles: e.g. user and assistant taking turns), or: {WAY_OUT}.")
        last = first_row + len(conversations) - 1
        return TemplateError(f"rows {first_row}-{last}: this chat template failed on them ({error}). {WAY_OUT}.")

    # ------------------------------------------------------------------------ loss
    def _special_tokens(self) -> list[str]:
        tokens = set(self.tokenizer.all_special_tokens)
        decoder = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        tokens |= {str(t) for t in decoder.values() if getattr(t, "special", False)}
        never = {self.tokenizer.bos_token, self.tokenizer.pad_token} - {self.tokenizer.eos_token}
        return sorted(t for t in tokens if t and t not in never)

    def _probe(self) -> str:
        """Check the template on a two-answer conversation and return its end-of-turn token."""
        try:
            text = self.training_text(PROBE)
        except Exception as error:  # a template may raise_exception on roles it does not support
            raise TemplateError(f"this chat template cannot render a plain user/assistant conversation ({error}). "
                                f"{WAY_OUT}.") from error
        self.encode(PROBE)  # every answer's prompt tokenizes to the ids before it
        end = loss_spans(PROBE, text, self._answer_prompts([PROBE])[0], self._special_tokens())[0][0][1]
        return next(t for t in self._special_tokens() if text[:end].endswith(t))

    def _find_default_system_prompt(self) -> str | None:
        """The system prompt the template writes into a conversation that has none, if it does."""
        marker, question = "\u2063SYSTEM\u2063", "\u2063QUESTION\u2063"
        try:
            with_system = self._render([{"role": "system", "content": marker},
                                        {"role": "user", "content": question}], True)
        except Exception:  # templates that refuse a system role (Gemma's) add none either
            return None
        without = self._render([{"role": "user", "content": question}], True)
        if marker not in with_system:
            return None
        before, after = with_system[:with_system.index(question)].split(marker)
        head = without[:without.index(question)]
        if head.startswith(before) and head.endswith(after) and len(head) > len(before) + len(after):
            return head[len(before):len(head) - len(after)]
        return None

    def encode(self, messages, max_length: int | None = None) -> tuple[list[int], list[int]]:
        """Token ids and a 0/1 mask of the tokens that carry loss, truncated as the trainer does.

        The mask covers every assistant turn, its end-of-turn token included; the ids of each turn's
        inference prompt are exactly the ids before it.
        """
        ids, mask, _ = self._encode_rows([messages], max_length)[0]
        return ids, mask

    def _encode_rows(self, conversations, max_length: int | None = None, every_turn: bool = False,
                     first_row: int | None = None) -> list[tuple]:
        """``(ids, mask, turn_ends)`` for each conversation (``masks.encode_rows``): ``encode``'s ids and mask, and
        with ``every_turn`` the number of tokens up to the end of each turn. With ``first_row`` a refusal names its row."""
        conversations = [list(messages) for messages in conversations]
        specials = self._special_tokens() if self.style == "chat" else None
        return encode_rows(self.tokenizer, conversations, self._training_texts(conversations),
                           self._answer_prompts(conversations), specials, max_length, every_turn, first_row)

    def token_lengths(self, conversations) -> list[int]:
        """The number of tokens of each conversation's training text, before truncation: what the trainer
        sees (the same ids as ``encode``), counted in one batch by the Rust tokenizer where there is one."""
        texts = self._training_texts([list(messages) for messages in conversations])
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast"):
            # sum of the attention mask, not len(): a backend left with padding on pads the whole batch
            return [sum(e.attention_mask) for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
        return [len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]

    def show(self, row, max_length: int | None = None) -> str:
        """Print (and return) exactly what the model sees, with the loss-carrying tokens in ⟦brackets⟧."""
        messages = row["messages"] if isinstance(row, dict) else row
        ids, mask = self.encode(messages, max_length)
        shown = marked((self.tokenizer.decode(run), carries) for run, carries in loss_runs(ids, mask))
        print(shown)
        print(carry_line(sum(mask), len(ids)))
        return shown

    def check_loss(self, rows, max_length: int | None = None, name: str = "train") -> None:
        """Refuse rows in which no token carries loss; warn about rows that lose their whole answer.

        ``rows`` are conversations, or the rows ``format`` made from them (their masks are read, not encoded again).
        """
        if "assistant_masks" in getattr(rows, "column_names", ()):
            masks = rows["assistant_masks"]
        else:
            masks = (self.encode(row["messages"], max_length)[1] for row in rows)
        empty = [number for number, mask in enumerate(masks, start=1) if not any(mask[:max_length])]
        if not empty:
            return
        cause = f"the answer is cut off by max_length={max_length} or empty"
        if len(empty) == len(rows):
            raise DataFormatError([Finding(None, None, f"no token carries loss in any row ({cause}): training "
                                           "would learn nothing (all labels -100, loss 0). Raise max_length or "
                                           "shorten the prompts", name)])
        warn(f"{len(empty)} of {len(rows)} rows of {name} carry no loss ({cause}); the trainer skips "
                      f"them (first rows: {empty[:5]}). Raise max_length or shorten their prompts", stacklevel=2)
