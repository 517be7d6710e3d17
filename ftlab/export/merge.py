"""Merging a LoRA adapter into its base model, one tensor at a time, so that it fits in little RAM.

What merging computes: every adapted linear layer of the base, ``y = W x + (alpha/r) B A x``, becomes
one plain layer whose weight is ``W' = W + (alpha/r) B A``. Nothing else changes, so the merged model
gives the adapter model's answers with no PEFT at inference. If the adapter was trained on a 4-bit
base, the layers it learned against were NF4's rounding of W, ``Q(W)``, not W: the merge starts from
``Q(W)`` (the original weight quantized and dequantized exactly as bitsandbytes did when it loaded
the model), so the merged model answers like the adapter model did, and rounds only once, to fp16.

``merge_files`` never holds the model in memory: it reads the base's safetensors files tensor by
tensor (plain reads, no memory map), folds in B A where there is one, and writes each result straight
into the output's safetensors shards, whose headers are known before the first weight is read. Its
peak memory is a few copies of the largest tensor plus the adapter (``merge_memory`` counts it before
starting, from the files or from a model's exact sizes) instead of the whole model, and a merge that
would not fit in the RAM available is refused, with the size it needs, before anything is written.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from ftlab.files.atomic import atomic_folder, claim
from ftlab.files.records import read_json
from ftlab.files.safetensors import (
    DTYPE_TABLE,
    DTYPES,
    PRECISIONS,
    data_start,
    numel,
    read_header,
    read_tensor,
    read_tensors,
    torch_dtype,
    write_header,
)
from ftlab.machine import has_gpu
from ftlab.memory.ram import available_ram, give_back_freed_memory, peak_rss, reset_peak_rss
from ftlab.memory.shapes import model_shape
from ftlab.models.loading import DEFAULT_MODEL

OUT_DTYPES = PRECISIONS  # the merged model's dtypes: ftlab's precision names
# what a merged model needs beside its weights to answer in the format it trained in (copied from the adapter)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "tokenizer.model")
PREFIX = "base_model.model."  # PEFT's name for the base inside a PeftModel
GB = 10**9
NF4_WORK = 4.6  # bytes per weight while quantizing: the load-dtype copy (<=4), packed codes (0.5), absmax
# Python objects, the meta-device model that lists the 4-bit layers, the allocator's slack (tests/test_export.py
# measures a merge of TinyLlama's largest tensors in a fresh process and checks its peak stays under the plan)
ALLOWANCE = 64 * 2**20
MERGED = "merged model"  # the kind of output a merge writes (ftlab.files.atomic.claim: what it may replace)
BASE_AGAIN = "Fetch the base model again, or give the folder of a whole copy with base=."
SAVE_AGAIN = ("Save the adapter again from the trained model (ftlab.save_adapter(model, tokenizer, folder)), or copy "
              "the adapter folder again from where it was saved.")


class ExportError(ValueError):
    """A folder or argument export cannot use; the message says what it needs."""


class MergeError(ExportError):
    """An adapter or base that cannot be merged here; the message says why and what to do."""


class MergeWontFit(MemoryError):
    """The merge needs more free RAM than this machine has; raised before anything is read or written."""


# ---------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class MergeMemory:
    """What a streamed merge holds at its peak, in bytes, and what it writes."""

    largest_tensor: str
    working_bytes: int  # the largest tensor's copies while it is merged (file dtype, fp32, output dtype)
    adapter_bytes: int  # every LoRA A and B, in fp32
    output_bytes: int  # the merged model on disk
    available_bytes: int | None  # free RAM here (MemAvailable), or None where it cannot be read

    @property
    def needed_bytes(self) -> int:
        return self.working_bytes + self.adapter_bytes + ALLOWANCE

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.needed_bytes < self.available_bytes

    def __str__(self) -> str:
        free = "unknown" if self.available_bytes is None else f"{self.available_bytes / GB:.1f} GB"
        return (f"a streamed merge holds at most {self.needed_bytes / GB:.3f} GB beyond the Python process itself "
                f"(largest tensor {self.largest_tensor}: {self.working_bytes / GB:.3f} GB while merged; adapter "
                f"{self.adapter_bytes / GB:.3f} GB; allowance {ALLOWANCE / GB:.3f} GB); it writes {self.output_bytes / GB:.2f} GB. Free RAM here: {free}")


def merge_memory(tensors, adapter_bytes: int, out_dtype: str = "fp16") -> MergeMemory:
    """Peak memory of a streamed merge of ``tensors``: (name, numel, file bytes per number, adapted, quantized).

    A tensor that is neither adapted nor quantized is only cast (file copy + output copy); an adapted
    one also gets an fp32 copy that B A is added to; a quantized one the NF4 round trip's work.
    """
    out = DTYPES[OUT_DTYPES[out_dtype]]
    work, largest, total = 0, "", 0
    for name, count, file_bytes, adapted, quantized in tensors:
        total += count * out
        here = count * (file_bytes + out + (4 if adapted or quantized else 0) + (NF4_WORK if quantized else 0))
        if here > work:
            work, largest = int(here), name
    return MergeMemory(largest, work, adapter_bytes, total, available_ram())


def planned_merge_memory(model=DEFAULT_MODEL, r: int = 16, targets=("q_proj", "v_proj"),
                         file_dtype: str = "bf16", out_dtype: str = "fp16", quantized: bool = False) -> MergeMemory:
    """``merge_memory`` from a model's exact sizes (``ftlab.memory.shapes.model_shape``: no weights, no download)."""
    shape = model_shape(model)
    adapted = set(targets) if targets not in ("all-linear", ["all-linear"]) else {n for n, *_ in shape.linears}
    file_bytes = DTYPES[OUT_DTYPES[file_dtype]]
    rows = [(f"{name} ({i}x{o})", i * o, file_bytes, name in adapted, quantized) for name, i, o, _ in shape.linears]
    rows.append((f"embeddings ({shape.vocab}x{shape.hidden})", shape.vocab * shape.hidden, file_bytes, False, False))
    memory = merge_memory(rows, 4 * shape.lora_params(r, sorted(adapted)), out_dtype)
    return replace(memory, output_bytes=shape.total_params * DTYPES[OUT_DTYPES[out_dtype]])  # every parameter once


# ---------------------------------------------------------------------------------------- merging
def lora_pairs(adapter: Path) -> tuple[dict, float]:
    """{base weight name: (A, B)} from a saved PEFT adapter, and the scale alpha/r it was trained with."""
    config = read_json(adapter / "adapter_config.json", SAVE_AGAIN)
    unsupported = {key: config.get(key) for key in ("use_dora", "rank_pattern", "alpha_pattern", "modules_to_save",
                                                    "trainable_token_indices", "fan_in_fan_out") if config.get(key)}
    if config.get("bias", "none") != "none":
        unsupported["bias"] = config["bias"]
    if config.get("peft_type", "LORA") != "LORA" or unsupported:
        raise MergeError(f"{adapter}: this adapter uses {unsupported or config.get('peft_type')}, which ftlab's "
                         "streamed merge does not fold in. Merge it with PEFT instead: "
                         "PeftModel.from_pretrained(base, folder).merge_and_unload()")
    if not all(isinstance(config.get(key), int | float) for key in ("r", "lora_alpha")):
        raise MergeError(f"{adapter / 'adapter_config.json'} gives no numbers for r and lora_alpha "
                         f"(r={config.get('r')!r}, lora_alpha={config.get('lora_alpha')!r}). {SAVE_AGAIN}")
    r, alpha = config["r"], config["lora_alpha"]
    scale = alpha / r ** 0.5 if config.get("use_rslora") else alpha / r
    weights = read_tensors(adapter_weights(adapter))
    pairs = {}
    for key, a in weights.items():
        if ".lora_A." in key:
            base = key.replace(".lora_A.", ".").removeprefix(PREFIX)
            pairs[base] = (a.float(), weights[key.replace(".lora_A.", ".lora_B.")].float())
        elif ".lora_B." not in key:
            raise MergeError(f"{adapter}: the adapter holds {key!r}, which is not a LoRA A or B matrix; merge it with "
                             "PEFT instead: PeftModel.from_pretrained(base, folder).merge_and_unload()")
    return pairs, scale


def adapter_weights(adapter: Path) -> Path:
    """The adapter's LoRA weights file, its header checked against its size; ``ExportError`` when it is missing,
    ``ftlab.files.faults.CutShort`` when it is cut short."""
    path = adapter / "adapter_model.safetensors"
    if not path.is_file():
        found = ("only adapter_model.bin, the old PyTorch format" if (adapter / "adapter_model.bin").exists()
                 else "no weights file at all")
        raise ExportError(f"{adapter} holds adapter_config.json but not adapter_model.safetensors, the LoRA weights "
                          f"({found}). {SAVE_AGAIN}")
    read_header(path)
    return path


def quantized_names(base: Path, skip=()) -> set[str]:
    """The weights bitsandbytes quantizes when it loads ``base`` in 4-bit: every linear layer but the output head."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base))
    head = model.get_output_embeddings()
    return {f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head and not any(s in name for s in skip or ())}


def nf4_round_trip(weight, quantization: dict):
    """``Q(W)``: the weight bitsandbytes computes with after loading ``weight`` in 4-bit (same dtype, blocks, levels)."""
    import bitsandbytes.functional as bnbf  # loads torch: has_gpu() answers as torch does

    device = "cuda" if has_gpu() else "cpu"  # where the model trained: the same kernels round alike
    w = weight.to(device, torch_dtype(quantization.get("load_dtype", "F16")))
    packed, state = bnbf.quantize_4bit(w, blocksize=quantization.get("blocksize", 64),
                                       quant_type=quantization.get("quant_type", "nf4"),
                                       compress_statistics=quantization.get("double_quant", True))
    return bnbf.dequantize_4bit(packed, state).cpu()


def merge_files(adapter, base, output, dtype: str = "fp16", quantization: dict | None = None,
                shard_bytes: int = 2 * GB, progress: bool = True, replace: bool = False) -> MergeReport:
    """Write ``base`` with ``adapter`` folded in to ``output`` (safetensors shards, config, tokenizer), streamed.

    ``output`` appears whole or not at all (``ftlab.files.atomic.atomic_folder``): everything, the adapter folder's
    tokenizer files included, is written beside it first; a failure leaves an existing ``output`` untouched.
    An existing ``output`` is replaced only if it is an earlier merge of ftlab's holding nothing else, or
    ``replace=True``; anything else there is refused (``OutputInUse``) before anything is read.
    ``base`` is a folder with the base's safetensors files and config.json; ``quantization`` (a dict:
    quant_type, double_quant, blocksize, load_dtype) says the adapter was trained on a 4-bit base.
    ``dtype`` is the merged model's: "fp16" (what a T4 runs), "bf16" or "fp32".
    """
    import torch

    adapter, base, output = Path(adapter), Path(base), Path(output)
    if dtype not in OUT_DTYPES:
        raise MergeError(f"dtype={dtype!r}: choose one of {sorted(OUT_DTYPES)}")
    for what, folder in (("adapter", adapter), ("base model", base)):
        if output.resolve() == folder.resolve() or output.resolve() in folder.resolve().parents:
            raise MergeError(f"output={str(output)!r} is the {what}'s folder (or holds it): the merge would replace it. "
                             "Give the merged model a folder of its own, e.g. next to the adapter's.")
    claim(output, MERGED, replace)  # before minutes of work: what is there and not ftlab's is refused at once
    before = reset_peak_rss()  # the merge's own peak is measured from here
    files = sorted(base.glob("*.safetensors"))
    if not files or not (base / "config.json").exists():
        raise MergeError(f"{base} holds no safetensors weights and config.json; give the base model's folder "
                         "(a Hub model's folder comes from huggingface_hub.snapshot_download)")
    read_json(base / "config.json", BASE_AGAIN)  # a damaged one is named here, not inside transformers
    pairs, scale = lora_pairs(adapter)
    quantized = quantized_names(base, quantization.get("skip")) if quantization else set()
    headers = {path: read_header(path) for path in files}
    entries = [(name, info, path) for path in files for name, info in sorted(
        headers[path].items(), key=lambda item: item[1]["data_offsets"][0])]
    missing = sorted(set(pairs) - {name for name, *_ in entries})
    if missing:
        raise MergeError(f"the adapter in {adapter} adapts {missing[:3]}, which the base in {base} does not have: "
                         "is it the base the adapter was trained on?")
    out_code = OUT_DTYPES[dtype]

    def output_dtype(info):
        return out_code if info["dtype"] in OUT_DTYPES.values() else info["dtype"]  # floats take the output dtype

    memory = merge_memory([(name, numel(info["shape"]), DTYPES[info["dtype"]], name in pairs, name in quantized)
                           for name, info, _ in entries], sum(4 * (a.numel() + b.numel()) for a, b in pairs.values()), dtype)
    if not memory.fits:
        raise MergeWontFit(f"Not merging: {memory}. Free memory first (del the trained model, or restart the "
                           "runtime and merge before loading anything), or merge on a machine with more RAM.")
    shards, size = [[]], 0  # output shards: lists of (name, dtype, shape), cut at shard_bytes
    for name, info, _ in entries:
        nbytes = numel(info["shape"]) * DTYPES[output_dtype(info)]
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, output_dtype(info), info["shape"]))
        size += nbytes
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)])
    where = {name: (info, path) for name, info, path in entries}
    started, done = time.perf_counter(), 0
    with atomic_folder(output, replace, kind=MERGED) as staging, ExitStack() as stack:
        sources = {path: (stack.enter_context(open(path, "rb")), data_start(path)) for path in files}
        for file_name, shard in zip(names, shards, strict=True):
            with open(staging / file_name, "wb") as f:
                write_header(f, shard)
                for name, out, _ in shard:
                    info, path = where[name]
                    weight = read_tensor(sources[path][0], info, sources[path][1])
                    if name in quantized:
                        weight = nf4_round_trip(weight, quantization)
                    if name in pairs:
                        a, b = pairs[name]
                        weight = weight.float()  # a fresh buffer (read or dequantized here): safe to change in place
                        weight.addmm_(b, a, alpha=scale)  # W + (alpha/r) B A, in place: no separate delta
                    weight = weight.to(torch_dtype(out)).contiguous()
                    f.write(memoryview(weight.view(torch.uint8).reshape(-1).numpy()))
                    del weight
                    give_back_freed_memory()
                    done += 1
                    if progress and (done % 50 == 0 or done == len(entries)):
                        print(f"  merged {done}/{len(entries)} tensors, {time.perf_counter() - started:.0f} s",
                              flush=True)
        if len(names) > 1:
            index = {"metadata": {"total_size": memory.output_bytes},
                     "weight_map": {name: file for file, shard in zip(names, shards, strict=True) for name, *_ in shard}}
            (staging / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
        _write_config(base, staging, dtype)
        copy_tokenizer(adapter, staging)
    peak = max(0, peak_rss() - before) if before is not None else None
    return MergeReport(str(output), len(pairs), len(quantized), scale, dtype, memory, peak, len(names),
                       time.perf_counter() - started)


def _write_config(base: Path, output: Path, dtype: str) -> None:
    config = read_json(base / "config.json", BASE_AGAIN)
    config.pop("quantization_config", None)  # the merged weights are plain fp16 / bf16 / fp32
    config["dtype"] = DTYPE_TABLE[OUT_DTYPES[dtype]][1]  # torch's name: "float16"
    config.pop("torch_dtype", None)
    (output / "config.json").write_text(json.dumps(config, indent=2))
    if (base / "generation_config.json").exists():
        shutil.copy(base / "generation_config.json", output)


def copy_tokenizer(adapter: Path, output: Path) -> None:
    """The adapter folder's tokenizer files (``TOKENIZER_FILES``: its chat template included), copied into ``output``."""
    for name in TOKENIZER_FILES:
        if (adapter / name).exists():
            shutil.copy(adapter / name, output / name)


@dataclass(frozen=True)
class MergeReport:
    """What ``merge_files`` wrote, and the peak RSS it measured (None where Linux's counters are absent)."""

    folder: str
    adapted_layers: int
    dequantized_layers: int
    scale: float
    dtype: str
    memory: MergeMemory
    peak_rss_bytes: int | None  # peak resident memory during the merge, above what the process held before
    shards: int
    seconds: float

    def __str__(self) -> str:
        peak = "not measurable here" if self.peak_rss_bytes is None else f"{self.peak_rss_bytes / GB:.3f} GB"
        four_bit = f", {self.dequantized_layers} dequantized from NF4 first" if self.dequantized_layers else ""
        return (f"merged {self.adapted_layers} adapted layers (scale alpha/r = {self.scale:g}{four_bit}) into "
                f"{self.folder}: {self.dtype}, {self.shards} shard(s), {self.seconds:.1f} s; peak memory above the "
                f"process: {peak} measured, {self.memory.needed_bytes / GB:.3f} GB planned")
