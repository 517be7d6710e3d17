"""The GPUs a plan can be made for: how much memory PyTorch reports on each, and the time estimate's constants.

``gpu_spec("T4")`` names a known GPU ("T4", "Tesla T4", "L4", "A100"), or takes a memory size in GiB. Its
speed constants are estimates until a calibration file measured on that GPU replaces them
(``benchmarks/gpu_calibrate.py`` writes one; ``FTLAB_CALIBRATION`` or ``ftlab/memory/calibration/<GPU>.json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ftlab.files.records import read_json
from ftlab.machine import choose_precision
from ftlab.memory.shapes import PlanInputError


# --------------------------------------------------------------------------------------------- GPUs
@dataclass(frozen=True)
class GPUSpec:
    """A GPU as the planner sees it. Speed constants are estimates unless ``calibrated_from`` names a file."""

    name: str
    memory_gib: float  # what torch.cuda.get_device_properties(0).total_memory reports
    capability: tuple[int, int]  # compute capability: (7, 5) on a T4, (8, 0)+ has native bf16
    achieved_tflops: float  # matmul throughput a LoRA training step reaches (not the datasheet peak)
    step_overhead_s: float  # per micro-batch: kernel launches, optimizer, data
    peak_tflops: float | None = None  # the datasheet's dense half-precision tensor-core peak
    sustained_tflops: float | None = None  # what its matmuls sustain at its power cap (a T4: ~24 under 70 W)
    qlora_slowdown: float = 1.5  # 4-bit dequantization in every matmul (1.4-2x reported on a T4)
    context_gib: float = 0.45  # CUDA context + cuBLAS workspace, outside PyTorch's allocator
    slack: float = 0.10  # allocator: reserved minus allocated, as a share of activations and loss
    activation_scale: float = 1.0  # measured / counted activations
    calibrated_from: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def half(self) -> str:
        """The half precision a round uses on this GPU: ``ftlab.machine.choose_precision``'s rule."""
        return choose_precision(self.capability)


# A T4's achieved rate: 24 TFLOPS, its sustained fp16 matmul rate under the 70 W cap, is what seed 003's batch-4
# round reached at Alpaca's lengths (16, the earlier guess, planned it 1.5x too slow: ftlab.memory.measured_runs).
# The other GPUs' rates are estimates that no run has checked.
GPUS = {
    "T4": GPUSpec("T4", 14.74, (7, 5), achieved_tflops=24.0, step_overhead_s=0.03, peak_tflops=65.0,
                  sustained_tflops=24.0),
    "L4": GPUSpec("L4", 22.16, (8, 9), achieved_tflops=45.0, step_overhead_s=0.02, peak_tflops=121.0),
    "A100": GPUSpec("A100 40GB", 39.39, (8, 0), achieved_tflops=150.0, step_overhead_s=0.015, peak_tflops=312.0),
    "A100-80GB": GPUSpec("A100 80GB", 79.15, (8, 0), achieved_tflops=150.0, step_overhead_s=0.015, peak_tflops=312.0),
}


CALIBRATION_DIR = Path(__file__).parent / "calibration"  # ftlab/memory/calibration


def gpu_spec(gpu="T4", calibration: str | os.PathLike | None = None) -> GPUSpec:
    """A known GPU by name ("T4", "Tesla T4", "L4", "A100"), or a memory size in GiB (T4 speed assumed)."""
    if isinstance(gpu, str) and gpu.replace(".", "", 1).isdigit():  # "15" from a command line: GiB
        gpu = float(gpu)
    if isinstance(gpu, GPUSpec):
        spec = gpu
    elif isinstance(gpu, int | float) and not isinstance(gpu, bool):
        if gpu <= 0:
            raise PlanInputError(f"gpu={gpu!r}: a memory size must be a positive number of GiB")
        spec = replace(GPUS["T4"], name=f"{gpu:g} GiB GPU", memory_gib=float(gpu), peak_tflops=None,
                       sustained_tflops=None, notes=("speed constants are a T4's: only the memory was given",))
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
    found = read_json(path, "Run benchmarks/gpu_calibrate.py on that GPU again to write it, or delete it (the plan "
                            "then uses its estimates).")
    try:
        constants = {k: float(v) for k, v in found["constants"].items()
                     if k in GPUSpec.__dataclass_fields__ and k not in ("name", "capability", "notes")}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise PlanInputError(f"cannot read the calibration file {path}: {error!r}") from error
    if found.get("gpu") and gpu_key(found["gpu"]) != gpu_key(spec.name):
        return spec  # measured on another GPU
    return replace(spec, **constants, calibrated_from=f"{path} ({len(found.get('runs', []))} runs)")
