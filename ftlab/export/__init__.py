"""Taking a round out of the notebook (chapter 07): the adapter saved and reloaded, merged, shared, as GGUF.

- ``adapter``: ``save_adapter`` / ``load_adapter`` (with the tokenizer, template and round that made it),
  ``merge_adapter``, ``push_to_hub``, ``compare_logits``.
- ``merge``: what merging computes (W + (alpha/r) B A), one tensor at a time so that it fits in little RAM.
- ``gguf``: a merged Llama written as a GGUF file (f16, q8_0, q4_0) for llama.cpp, Ollama and LM Studio, with
  ``gguf_vocab`` (its tokenizer as llama.cpp reads it: byte-level or SentencePiece BPE) and ``ollama`` (the
  Modelfile beside it: the chat template in Ollama's syntax, the stop tokens).
- ``llama_cpp``: the file run in llama.cpp itself (node-llama-cpp's prebuilt binaries), answers beside transformers'.
"""

from ftlab.export import adapter, gguf, merge
from ftlab.export.adapter import (
    ExportError,
    compare_logits,
    load_adapter,
    merge_adapter,
    push_to_hub,
    read_record,
    save_adapter,
)
from ftlab.export.gguf import write_gguf

__all__ = ["adapter", "compare_logits", "ExportError", "gguf", "load_adapter", "merge", "merge_adapter",
           "push_to_hub", "read_record", "save_adapter", "write_gguf"]
