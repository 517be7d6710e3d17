"""One template for training and inference: what the model sees, and which tokens carry the loss.

``CHAT_TEMPLATE`` writes exactly what TinyLlama-1.1B-Chat was trained on
(``<|user|>\\n...</s>\\n<|assistant|>\\n...``) and adds what the original lacks: ``{% generation %}``
markers around each answer, so TRL puts the loss on the answers only, and a BOS token up front.

A ``Template`` turns ftlab's chat rows into training rows and into inference prompts from the same
definition, so the prompt at inference is exactly the training text up to where the answer begins (a
seed learner's accuracy went from 26% to 57% when the two were made to match). ``Template.chat``
uses the tokenizer's chat template; ``Template.alpaca`` the classic Alpaca prompt.
``show(row)`` prints what the model sees with the loss-carrying part in ⟦brackets⟧, and
``check_loss(rows)`` refuses data in which no token carries loss.
"""

from __future__ import annotations

import re
import warnings

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
GENERATION_MARKER = re.compile(r"{%-?\s*generation\s*-?%}")

ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                   "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


class Template:
    """How chat rows become training text and inference prompts. Build with ``chat`` or ``alpaca``."""

    def __init__(self, tokenizer, style: str = "chat"):
        if style not in ("chat", "alpaca"):
            raise ValueError(f"unknown template style {style!r}; use 'chat' or 'alpaca'")
        self.tokenizer, self.style = tokenizer, style

    @classmethod
    def chat(cls, tokenizer) -> Template:
        return cls(tokenizer, "chat")

    @classmethod
    def alpaca(cls, tokenizer) -> Template:
        return cls(tokenizer, "alpaca")

    def __repr__(self) -> str:
        return f"Template.{self.style}({type(self.tokenizer).__name__})"

    # ------------------------------------------------------------------------ text
    def prompt(self, messages) -> str:
        """The inference prompt: everything before the answer, ending where the model starts writing."""
        turns = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        if turns and turns[-1]["role"] == "assistant":
            turns = turns[:-1]
        if self.style == "chat":
            return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        instruction = "\n\n".join(t["content"] for t in turns if t["role"] != "assistant")
        return (self.tokenizer.bos_token or "") + ALPACA_NO_INPUT.format(instruction=instruction)

    def training_text(self, messages) -> str:
        """The whole text the model trains on for one row: prompt, answer, end of sequence."""
        if self.style == "chat":
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False)
        return self.prompt(messages) + messages[-1]["content"] + self.tokenizer.eos_token

    def format(self, dataset):
        """Rows for TRL: chat rows stay chat rows; Alpaca rows become prompt/completion text pairs."""
        if self.style == "chat":
            return dataset
        # TRL tokenises prompt/completion text with the tokenizer's own special tokens: where that adds a BOS
        # (Llama's tokenizer does), the prompt must not carry a second one
        adds_bos = self.tokenizer("a")["input_ids"][:1] == [self.tokenizer.bos_token_id]
        strip = len(self.tokenizer.bos_token or "") if adds_bos else 0
        return dataset.map(lambda row: {"prompt": self.prompt(row["messages"])[strip:],
                                        "completion": row["messages"][-1]["content"]},
                           remove_columns=["messages"], desc="Alpaca template")

    # ------------------------------------------------------------------------ loss
    def encode(self, messages, max_length: int | None = None) -> tuple[list[int], list[int]]:
        """Token ids and a 0/1 mask of the tokens that carry loss, truncated as the trainer does."""
        if self.style == "chat":
            if not GENERATION_MARKER.search(self.tokenizer.chat_template or ""):
                raise ValueError("the tokenizer's chat template has no {% generation %} markers, so no answer "
                                 "token can be told from the prompt; load the model with ftlab.load_model, or "
                                 "call ftlab.models.prepare_tokenizer(tokenizer), to use ftlab's marked template")
            encoded = self.tokenizer.apply_chat_template(list(messages), return_assistant_tokens_mask=True,
                                                         return_dict=True)
            ids, mask = encoded["input_ids"], encoded["assistant_masks"]
        else:
            prompt = self.tokenizer(self.prompt(messages), add_special_tokens=False)["input_ids"]
            answer = self.tokenizer(messages[-1]["content"] + self.tokenizer.eos_token,
                                    add_special_tokens=False)["input_ids"]
            ids, mask = prompt + answer, [0] * len(prompt) + [1] * len(answer)
        return ids[:max_length], list(mask[:max_length])

    def show(self, row, max_length: int | None = None) -> str:
        """Print (and return) exactly what the model sees, with the loss-carrying tokens in ⟦brackets⟧."""
        messages = row["messages"] if isinstance(row, dict) else row
        ids, mask = self.encode(messages, max_length)
        pieces, current, run = [], None, []
        for token, carries in [*zip(ids, mask, strict=True), (None, None)]:
            if carries != current and run:
                text = self.tokenizer.decode(run)
                pieces.append(f"⟦{text}⟧" if current else text)
                run = []
            current = carries
            if token is not None:
                run.append(token)
        shown = "".join(pieces)
        print(shown)
        print(f"-- {sum(mask)} of {len(ids)} tokens carry loss (inside ⟦ ⟧)")
        return shown

    def check_loss(self, rows, max_length: int | None = None, name: str = "train") -> None:
        """Refuse rows in which no token carries loss; warn about rows that lose their whole answer."""
        from ftlab.data.errors import DataFormatError, Finding

        empty = [number for number, row in enumerate(rows, start=1)
                 if not any(self.encode(row["messages"], max_length)[1])]
        if not empty:
            return
        cause = f"the answer is cut off by max_length={max_length} or empty"
        if len(empty) == len(rows):
            raise DataFormatError([Finding(None, None, f"no token carries loss in any row ({cause}): training "
                                           "would learn nothing (all labels -100, loss 0). Raise max_length or "
                                           "shorten the prompts", name)])
        warnings.warn(f"{len(empty)} of {len(rows)} rows of {name} carry no loss ({cause}); the trainer skips "
                      f"them (first rows: {empty[:5]}). Raise max_length or shorten their prompts", stacklevel=2)
