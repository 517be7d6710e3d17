"""A transformers tokenizer as llama.cpp holds it in a GGUF file: its kind, tokens, scores, merges and special tokens.

llama.cpp knows two kinds of BPE tokenizer, and the course's models use both:

- **byte-level BPE** (``"gpt2"`` in GGUF): ftlab's tiny model and SmolLM2. Text is cut into words by a regular
  expression (llama.cpp's pre-tokenizer, named in the file: ``gpt-2`` for the GPT-2 expression transformers'
  ``ByteLevel`` uses, ``smollm`` when digits are split one by one first), then merged by the merge list.
- **SentencePiece BPE with byte fallback** (``"llama"``): TinyLlama's and Llama 2's. Spaces become ``▁``, and
  llama.cpp merges the neighbouring pair whose result has the highest *score*, where transformers follows the
  merge list. So each token's score here is minus the rank of the first merge that makes it: both then merge in
  the same order. (The ``gguf`` package's ``LlamaHfVocab`` gives every token the score -1000, so llama.cpp
  would merge left to right instead, and cut words differently from the model's training.) A character
  missing from the vocabulary becomes its UTF-8 bytes, the ``<0x..>`` tokens, in both.

Where the ``▁`` goes at the start of a text is the one thing the two cannot both express: transformers 5 puts
one before a text's very first word only (``prepend_scheme="first"``), llama.cpp's ``add_space_prefix`` before
every piece of text that follows a special token. ftlab's prompts start with a special token (BOS, or the
template's own), and then neither adds one: the file says ``add_space_prefix = false`` for ``"first"``, so
llama.cpp reads the chat prompts token for token as transformers does (tests/test_llama_cpp.py checks it).

Everything is read from the tokenizer as transformers loads it (``AutoTokenizer``: for TinyLlama the
pre-tokenizer comes from transformers' ``LlamaTokenizer`` class, not from tokenizer.json), so the file
tokenizes as the model was trained. A tokenizer of another kind is refused with what to use instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ftlab.templates.template import Template

CONVERTER = ("llama.cpp's own converter: python convert_hf_to_gguf.py MERGED_FOLDER --outtype f16 (from a clone of "
             "https://github.com/ggml-org/llama.cpp)")
BYTE_TOKEN = re.compile(r"<0x[0-9A-F]{2}>")
# token types, as gguf.TokenType numbers them (llama.cpp's llama_token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class VocabularyError(ValueError):
    """A tokenizer GGUF cannot hold as llama.cpp would read it; the message says what to use instead."""


@dataclass
class Vocabulary:
    """What a GGUF file says about a tokenizer (``tokenizer.ggml.*``) and its chat format."""

    model: str  # "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE)
    pre: str | None  # llama.cpp's pre-tokenizer name for "gpt2"
    tokens: list[str]
    types: list[int]
    merges: list[str]
    scores: list[float] | None  # "llama" only: the merge order as llama.cpp reads it
    add_space_prefix: bool | None  # "llama" only
    add_bos: bool  # the tokenizer puts BOS before every text (Llama's): llama.cpp (and Ollama) do so too
    template_bos: str  # the BOS text the chat template itself writes first (ftlab's tiny model's), or ""
    special: dict[str, int] = field(default_factory=dict)  # bos / eos / eot / pad / unk -> token id
    chat_template: str | None = None
    stops: list[str] = field(default_factory=list)  # the tokens that end a turn (eot, then eos)
    tokenizer: object = field(default=None, repr=False)  # the transformers tokenizer it was read from


def _parts(component: dict | None, kind: str) -> list[dict]:
    if not component:
        return []
    return list(component.get(kind, [])) if component.get("type") == "Sequence" else [component]


def _describe(model: dict, pre: list[dict], normalizer: list[dict]) -> str:
    pre_names = " + ".join(p.get("type", "?") for p in pre) or "no"
    norm_names = " + ".join(p.get("type", "?") for p in normalizer)
    return (f"a {model.get('type')} model{' with byte fallback' if model.get('byte_fallback') else ''}, "
            f"{pre_names} pre-tokenization{f', {norm_names} normalization' if norm_names else ''}")


def _kind(folder: Path, backend: dict) -> tuple[str, str | None, bool | None]:
    """("gpt2", llama.cpp's pre-tokenizer, None) or ("llama", None, add_space_prefix); refuses any other kind."""
    model = backend.get("model") or {}
    pre, normalizer = _parts(backend.get("pre_tokenizer"), "pretokenizers"), _parts(backend.get("normalizer"),
                                                                                    "normalizers")
    kinds = [p.get("type") for p in pre]
    if model.get("type") == "BPE" and not normalizer and kinds and kinds[-1] == "ByteLevel":
        byte_level = pre[-1]
        if byte_level.get("use_regex", True) and not byte_level.get("add_prefix_space", False):
            if kinds == ["ByteLevel"]:
                return "gpt2", "gpt-2", None
            if kinds == ["Digits", "ByteLevel"] and pre[0].get("individual_digits"):
                return "gpt2", "smollm", None
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        # split=True: transformers never merges across a ▁ that llama.cpp would merge across (refused below)
        crosses = pre and pre[0].get("split", False) and any("▁" in token[1:] for token in model.get("vocab", {}))
        if kinds == ["Metaspace"] and pre[0].get("replacement") == "▁" and not normalizer and not crosses:
            return "llama", None, pre[0].get("prepend_scheme", "always") == "always"
        legacy = [n.get("type") for n in normalizer]
        if not pre and legacy in (["Prepend", "Replace"], ["Replace"]) and all(
                n.get("prepend", "▁") == "▁" for n in normalizer if n.get("type") == "Prepend"):
            return "llama", None, legacy[0] == "Prepend"  # older tokenizer.json files: ▁ before every piece
    raise VocabularyError(
        f"{folder}: its tokenizer is {_describe(model, pre, normalizer)}, which ftlab cannot write as llama.cpp "
        "reads it. ftlab writes GGUF for byte-level BPE (GPT-2's, ftlab's tiny model's, SmolLM2's) and for "
        f"SentencePiece BPE with byte fallback and the ▁ metaspace (Llama 2's, TinyLlama's); convert this one with "
        f"{CONVERTER}")


def read_vocabulary(folder: Path, vocab_size: int) -> Vocabulary:
    """The tokenizer saved in ``folder`` as a GGUF file holds it, for a model with ``vocab_size`` embedding rows."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not getattr(tokenizer, "is_fast", False):
        raise VocabularyError(f"{folder}: its tokenizer loads without tokenizer.json (a slow tokenizer); save it "
                              f"again with transformers 5 (tokenizer.save_pretrained), or convert with {CONVERTER}")
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model, pre, add_space_prefix = _kind(folder, backend)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise VocabularyError(f"{folder}: the tokenizer has token ids up to {max(vocab.values())} but the model has only "
                              f"{vocab_size} embedding rows (config.json's vocab_size): resize the embeddings "
                              "(model.resize_token_embeddings(len(tokenizer))) and save the model again")
    added = {i: token for i, token in tokenizer.added_tokens_decoder.items()}
    by_id = {i: token for token, i in vocab.items()}
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    types = []
    for i, token in enumerate(tokens):
        if i in added:
            types.append(CONTROL if added[i].special else USER_DEFINED)
        elif i not in by_id:
            types.append(UNUSED)
        elif model == "llama" and BYTE_TOKEN.fullmatch(token):
            types.append(BYTE)
        else:
            types.append(NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend["model"].get("merges", [])]
    scores = None
    if model == "llama":
        missing = [f"<0x{b:02X}>" for b in range(256) if f"<0x{b:02X}>" not in vocab]
        if missing:
            raise VocabularyError(f"{folder}: a SentencePiece tokenizer with byte fallback needs the 256 byte tokens "
                                  f"<0x00>..<0xFF>, and {len(missing)} are missing ({', '.join(missing[:3])}, ...): "
                                  f"llama.cpp cannot load it; convert with {CONVERTER}")
        first_merge: dict[str, int] = {}
        for rank, merge in enumerate(merges):
            first_merge.setdefault(merge.replace(" ", ""), rank)
        # a token no merge makes (a character, a byte, a special token) comes last: transformers never merges into it
        scores = [-float(first_merge.get(t, len(merges))) for t in tokens]
    with contextlib.redirect_stdout(io.StringIO()):  # Template's notes (a default system prompt) are for training
        template = Template.chat(tokenizer)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], chat_template=template.chat_template,
                                             tokenize=False, add_generation_prompt=True)
    writes_bos = bool(tokenizer.bos_token) and "bos_token" in template.chat_template and \
        rendered.startswith(tokenizer.bos_token)
    special = {role: getattr(tokenizer, f"{role}_token_id") for role in ("bos", "eos", "pad", "unk")}
    stops = [tokenizer.convert_ids_to_tokens(i) for i in template.stop_token_ids]
    special["eot"] = template.stop_token_ids[0] if template.stop_token_ids else None
    return Vocabulary(model, pre, tokens, types, merges, scores, add_space_prefix, bool(template.bos),
                      tokenizer.bos_token if writes_bos else "", {k: v for k, v in special.items() if v is not None},
                      template.chat_template, stops, tokenizer)
