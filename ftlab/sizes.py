"""The sizes a memory plan starts from, read without loading any weights.

* ``model_shape(model)``: exact parameter counts of a causal LM, built from its config on PyTorch's
  ``meta`` device (shapes only, no memory, no download). TinyLlama-1.1B's config is known here, so
  planning for it needs no Hub.
* ``gpu_spec("T4")``: how much memory PyTorch reports on a GPU, and the speed constants of the time
  estimate (estimates until a calibration file measured on that GPU replaces them).
* ``trl_loss()``: how the installed TRL computes the SFT loss, read from its source (the loss's memory
  depends on it: TRL 1.x never builds the full fp32 logits).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

TINYLLAMA = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
             "tie_word_embeddings": False, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5}
KNOWN_CONFIGS = {"TinyLlama/TinyLlama-1.1B-Chat-v1.0": TINYLLAMA, "TinyLlama/TinyLlama_v1.1": TINYLLAMA,
                 "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": TINYLLAMA}
GIB = 2**30


class PlanInputError(ValueError):
    """An input the planner cannot use; the message says what it accepts instead."""


@dataclass(frozen=True)
class ModelShape:
    """A model's sizes. ``linears``: (name, in_features, out_features, how many) of the decoder layers."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    total_params: int
    linears: tuple[tuple[str, int, int, int], ...]
    lm_head_params: int  # a plain linear layer that bitsandbytes leaves unquantized

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def linear_params(self) -> int:
        """Parameters of the decoder layers' linear layers: what 4-bit quantization compresses."""
        return sum(i * o * n for _, i, o, n in self.linears)

    @property
    def other_params(self) -> int:
        """Embeddings, norms and the lm_head: they stay in fp16 (fp32 after prepare_model_for_kbit_training)."""
        return self.total_params - self.linear_params

    def lora_params(self, r: int, targets) -> int:
        """Trainable LoRA parameters: r x (in + out) for every targeted linear layer."""
        names = {name for name, *_ in self.linears}
        targets = sorted(names) if targets in ("all-linear", ["all-linear"]) else list(targets)
        missing = [t for t in targets if t not in names]
        if missing:
            raise PlanInputError(f"{self.name} has no linear layer named {missing}; it has {sorted(names)}")
        return sum(r * (i + o) * n for name, i, o, n in self.linears if name in targets)


def _read_config(model):
    """A transformers config from a known name, a folder or config.json path, a dict, a config or a model."""
    from transformers import AutoConfig, PretrainedConfig

    if hasattr(model, "config") and isinstance(model.config, PretrainedConfig):
        return model.config, type(model).__name__
    if isinstance(model, PretrainedConfig):
        return model, model.model_type
    if isinstance(model, dict):
        model = dict(model)
        return AutoConfig.for_model(model.pop("model_type", "llama"), **model), "config"
    name = str(model)
    if name in KNOWN_CONFIGS:
        known = dict(KNOWN_CONFIGS[name])
        return AutoConfig.for_model(known.pop("model_type"), **known), name
    if name == "tiny":
        from ftlab import tiny

        name = str(tiny.cache_dir())
        if not (Path(name) / "config.json").exists():
            raise PlanInputError("ftlab's tiny model is not built yet: run ftlab.tiny_model() once, then plan")
    path = Path(name)
    file = path / "config.json" if path.is_dir() else path
    if not file.exists():
        raise PlanInputError(f"cannot read a model config at {file}: no such file. Give a folder holding "
                             f"config.json, the path of a config.json, a transformers config, or one of the "
                             f"known names {sorted(KNOWN_CONFIGS)}")
    try:
        values = json.loads(file.read_text())
        return AutoConfig.for_model(values.pop("model_type"), **values), path.name
    except (ValueError, KeyError, TypeError) as error:
        raise PlanInputError(f"cannot read the model config {file}: {error!r}. It must be a transformers "
                             "config.json with a model_type") from error


def model_shape(model="TinyLlama/TinyLlama-1.1B-Chat-v1.0") -> ModelShape:
    """Exact sizes of ``model`` from its config, counted on the meta device (no weights, no download)."""
    if isinstance(model, ModelShape):
        return model
    import torch
    from transformers import AutoModelForCausalLM

    config, name = _read_config(model)
    key = (name, config.to_json_string(use_diff=False))
    if key in _SHAPES:
        return _SHAPES[key]
    with torch.device("meta"):
        built = AutoModelForCausalLM.from_config(config)
    counts: dict[tuple[str, int, int], int] = {}
    lm_head = built.get_output_embeddings()
    for full_name, module in built.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not lm_head:
            key = (full_name.rsplit(".", 1)[-1], module.in_features, module.out_features)
            counts[key] = counts.get(key, 0) + 1
    text = config.get_text_config()
    _SHAPES[key] = ModelShape(
        name=name, hidden=text.hidden_size, intermediate=text.intermediate_size, layers=text.num_hidden_layers,
        heads=text.num_attention_heads, kv_heads=getattr(text, "num_key_value_heads", None) or text.num_attention_heads,
        vocab=text.vocab_size, total_params=sum(p.numel() for p in built.parameters()),
        linears=tuple((n, i, o, c) for (n, i, o), c in counts.items()),
        lm_head_params=0 if lm_head is None or text.tie_word_embeddings else lm_head.weight.numel())
    return _SHAPES[key]


_SHAPES: dict = {}  # counting on the meta device takes a second for a 1B model: once per config


# --------------------------------------------------------------------------------------------- GPUs
@dataclass(frozen=True)
class GPUSpec:
    """A GPU as the planner sees it. Speed constants are estimates unless ``calibrated_from`` names a file."""

    name: str
    memory_gib: float  # what torch.cuda.get_device_properties(0).total_memory reports
    half: str  # fp16 on a T4 (no native bf16), bf16 from Ampere on
    achieved_tflops: float  # matmul throughput a LoRA training step reaches (not the datasheet peak)
    step_overhead_s: float  # per micro-batch: kernel launches, optimizer, data
    qlora_slowdown: float = 1.5  # 4-bit dequantization in every matmul (1.4-2x reported on a T4)
    context_gib: float = 0.45  # CUDA context + cuBLAS workspace, outside PyTorch's allocator
    slack: float = 0.10  # allocator: reserved minus allocated, as a share of activations and loss
    activation_scale: float = 1.0  # measured / counted activations
    calibrated_from: str | None = None
    notes: tuple[str, ...] = field(default=())


GPUS = {
    "T4": GPUSpec("T4", 14.74, "fp16", achieved_tflops=16.0, step_overhead_s=0.03),
    "L4": GPUSpec("L4", 22.16, "bf16", achieved_tflops=45.0, step_overhead_s=0.02),
    "A100": GPUSpec("A100 40GB", 39.39, "bf16", achieved_tflops=150.0, step_overhead_s=0.015),
    "A100-80GB": GPUSpec("A100 80GB", 79.15, "bf16", achieved_tflops=150.0, step_overhead_s=0.015),
}
CALIBRATION_DIR = Path(__file__).parent / "calibration"


def gpu_spec(gpu="T4", calibration: str | os.PathLike | None = None) -> GPUSpec:
    """A known GPU by name ("T4", "Tesla T4", "L4", "A100"), or a memory size in GiB (T4 speed assumed)."""
    if isinstance(gpu, str) and gpu.replace(".", "", 1).isdigit():  # "15" from a command line: GiB
        gpu = float(gpu)
    if isinstance(gpu, GPUSpec):
        spec = gpu
    elif isinstance(gpu, int | float) and not isinstance(gpu, bool):
        if gpu <= 0:
            raise PlanInputError(f"gpu={gpu!r}: a memory size must be a positive number of GiB")
        spec = replace(GPUS["T4"], name=f"{gpu:g} GiB GPU", memory_gib=float(gpu),
                       notes=("speed constants are a T4's: only the memory was given",))
    else:
        key = gpu_key(gpu)
        if key not in GPUS:
            raise PlanInputError(f"unknown GPU {gpu!r}; known: {sorted(GPUS)}. Or give the memory size in GiB, "
                                 "e.g. gpu=15.")
        spec = GPUS[key]
    return calibrated(spec, calibration)


def gpu_for(name: str | None, memory_gib: float | None):
    """The planner's GPU for what torch reports: a known one by name (with the memory measured), else the memory."""
    try:
        spec = gpu_spec(name)
    except PlanInputError:
        return memory_gib
    return replace(spec, memory_gib=memory_gib) if memory_gib else spec


def gpu_key(name) -> str:
    """"Tesla T4" and "NVIDIA A100-SXM4-40GB" (what torch reports) -> "T4" and "A100"."""
    key = str(name).upper().replace("NVIDIA ", "").replace("TESLA ", "").strip().replace(" ", "-")
    return {"A100-40GB": "A100", "A100-SXM4-40GB": "A100", "A100-SXM4-80GB": "A100-80GB",
            "A100-80GB": "A100-80GB"}.get(key, key)


def calibrated(spec: GPUSpec, path: str | os.PathLike | None = None) -> GPUSpec:
    """``spec`` with the constants a calibration file measured (benchmarks/gpu_calibrate.py writes one)."""
    path = path or os.environ.get("FTLAB_CALIBRATION") or CALIBRATION_DIR / f"{gpu_key(spec.name)}.json"
    path = Path(path)
    if not path.exists():
        return spec
    try:
        found = json.loads(path.read_text())
        constants = {k: float(v) for k, v in found["constants"].items()
                     if k in GPUSpec.__dataclass_fields__ and k not in ("name", "half", "notes")}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise PlanInputError(f"cannot read the calibration file {path}: {error!r}") from error
    if found.get("gpu") and gpu_key(found["gpu"]) != gpu_key(spec.name):
        return spec  # measured on another GPU
    return replace(spec, **constants, calibrated_from=f"{path} ({len(found.get('runs', []))} runs)")


# ------------------------------------------------------------------------------------- TRL's loss
@dataclass(frozen=True)
class LossImplementation:
    kind: str  # "chunked" (TRL >= 1.x fused LM head) or "full" (fp32 logits of the whole batch)
    token_chunk: int = 0
    vocab_chunk: int = 0
    source: str = ""


@lru_cache(maxsize=1)
def trl_loss() -> LossImplementation:
    """Read the installed TRL's SFT loss from its source (importing TRL takes seconds; reading does not)."""
    from importlib.util import find_spec

    spec = find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return LossImplementation("full", source="TRL not installed: assuming full logits")
    root = Path(spec.submodule_search_locations[0])

    def read(relative):
        file = root / relative
        return file.read_text() if file.exists() else ""

    trainer, utils, kernel = read("trainer/sft_trainer.py"), read("trainer/utils.py"), read("kernels/chunked_logprob.py")
    vocab = re.search(r"^_CHUNKED_LOGPROB_CHUNK_SIZE\s*=\s*(\d+)", utils, re.M)
    tokens = re.search(r"^TOKEN_CHUNK_SIZE\s*=\s*(\d+)", kernel, re.M)
    if "add_fused_lm_head(" in trainer and vocab and tokens:
        return LossImplementation("chunked", int(tokens.group(1)), int(vocab.group(1)),
                                  f"{root.name}/trainer/sft_trainer.py: fused LM head, chunked log-probs")
    return LossImplementation("full", source=f"{root}: no chunked loss found, assuming full fp32 logits")
