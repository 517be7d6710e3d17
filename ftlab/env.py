"""Where am I, and which precision? One call answers both for every notebook.

``ftlab.setup()`` detects Colab / Kaggle / local, the GPU (name, compute capability, memory, how many),
whether the Hugging Face Hub can be reached (``ftlab.hub``), and chooses the precision from the hardware in one
line: bf16 needs compute capability 8.0 (Ampere) or newer, a T4 (7.5) gets fp16, a CPU fp32.
``torch.cuda.is_bf16_supported()`` is never asked: it says True on a T4, where bf16 is only emulated.
It never prompts for a login (wandb's prompt has blocked Kaggle runs) and prints a one-line banner.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass

from ftlab.hub import hub_endpoint, hub_forced_offline, hub_online  # noqa: F401 - also ftlab.env's, as before

BF16_MIN_CAPABILITY = (8, 0)  # Ampere: the first generation with native bf16 tensor cores
# Below this many parameters a model's matrices are too small to share between cores: one thread is as
# fast as two on an idle machine and stays fast on a busy one (see use_cpu_threads).
SMALL_MODEL_PARAMS = 30_000_000
STACK = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "evaluate")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the learning stack, from package metadata (nothing heavy is imported)."""
    from importlib import metadata

    found: dict[str, str | None] = {}
    for package in STACK:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def choose_precision(capability: tuple[int, int] | None) -> str:
    """``"bf16"`` from Ampere on, ``"fp16"`` on older GPUs (a T4 is 7.5), ``"fp32"`` without a GPU."""
    if capability is None:
        return "fp32"
    return "bf16" if tuple(capability) >= BF16_MIN_CAPABILITY else "fp16"


def preset_for(model, has_gpu: bool) -> str:
    """The preset for ``model`` (a loaded model, or a name as ``ftlab.load_model`` takes): see ``Environment.preset_for``."""
    tiny = model.num_parameters() < SMALL_MODEL_PARAMS if hasattr(model, "num_parameters") else str(model) == "tiny"
    if tiny:
        return "cpu-tiny"
    return "t4-lora" if has_gpu else "cpu-small"


@dataclass
class Environment:
    """What ``ftlab.setup()`` found. ``precision`` is what every round passes to the trainer."""

    platform: str  # "colab", "kaggle" or "local"
    has_gpu: bool
    gpu_name: str | None
    gpu_count: int
    capability: tuple[int, int] | None
    gpu_memory_gib: float | None
    native_bf16: bool
    precision: str  # "bf16", "fp16" or "fp32"
    cpu_threads: int
    hub_online: bool
    default_model: str  # the Hub id on a GPU with the Hub, else "tiny"
    python: str
    torch: str
    gpu_choice: str | None = None  # what setup() did about several visible GPUs (Kaggle's T4 x2)
    tiny_params: int | None = None  # counted from the saved tiny model; None until it is built

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
        if self.has_gpu:
            count = f" x{self.gpu_count}" if self.gpu_count > 1 else ""
            head = (f"{where} · {self.gpu_name}{count} (cc {self.capability[0]}.{self.capability[1]}, "
                    f"{self.gpu_memory_gib:.1f} GiB) · {self.precision} · {hub}")
        else:
            threads = f"{self.cpu_threads} thread{'s' if self.cpu_threads != 1 else ''}"
            head = f"{where} · CPU ({threads}) · {self.precision} · {hub}"
        lines = [head]
        if self.gpu_choice:
            lines.append(f"  {self.gpu_choice}")
        if self.uses_tiny_model:
            why = "No GPU found" if not self.has_gpu else "The Hub cannot be reached"
            size = f"{self.tiny_params / 1e6:.2g}M params" if self.tiny_params else "built at first use"
            lines.append(f"  {why}: using ftlab's tiny model ({size}) on the "
                         f"{'GPU' if self.has_gpu else 'CPU'}. Numbers will be small; the steps are the same.")
        return "\n".join(lines)


def _tiny_size() -> int | None:
    """The tiny model's parameter count, read from its saved weights (None before it is built)."""
    from ftlab.cache import saved_parameters
    from ftlab.tiny import cache_dir

    return saved_parameters(cache_dir())


def detect_platform() -> str:
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_GPU"):
        return "colab"
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or os.path.isdir("/kaggle/working"):
        return "kaggle"
    return "local"


@dataclass(frozen=True)
class GPU:
    name: str
    capability: tuple[int, int]  # compute capability: (7, 5) on a T4, (8, 0)+ has native bf16
    memory_gib: float


def gpus() -> list[GPU]:
    """The GPUs this process may use, GPU 0 first: ftlab's one GPU reader.

    Read through torch when torch is loaded already, else from ``nvidia-smi`` (honouring a numeric
    CUDA_VISIBLE_DEVICES as torch would), so ``ftlab doctor`` answers without importing torch.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        if not torch.cuda.is_available():
            return []
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        return [GPU(p.name, (p.major, p.minor), p.total_memory / 2**30) for p in props]
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.splitlines():
        try:
            name, capability, mib = (part.strip() for part in line.split(","))
            major, minor = (int(x) for x in capability.split("."))
            found.append(GPU(name, (major, minor), float(mib) / 1024))
        except ValueError:  # a line nvidia-smi wrote for something else
            continue
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and all(part.strip().isdigit() for part in visible.split(",") if part.strip()):
        found = [found[int(i)] for i in visible.split(",") if i.strip() and int(i) < len(found)]
    return found


def gpu_info() -> tuple[str | None, int, tuple[int, int] | None, float | None]:
    """(name, count, compute capability, memory in GiB) of GPU 0, or Nones without a GPU (torch's view)."""
    import torch  # noqa: F401 - the training path: read the GPUs as torch sees them

    found = gpus()
    if not found:
        return None, 0, None, None
    return found[0].name, len(found), found[0].capability, found[0].memory_gib


def quiet_known_noise() -> None:
    """Silence what only confuses a learner: login prompts and warnings about nothing they can change."""
    # A preinstalled wandb asks for a login inside Trainer and blocks a Kaggle run; ftlab reports to no
    # tracker unless asked, and these make sure nothing prompts if one is asked for later.
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # bitsandbytes on a CPU looks for an optional kernels package; transformers' own Trainer still calls
    # a helper it has renamed. Neither is the learner's to fix.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # PEFT looks the base model up on the Hub when saving an adapter; offline it can only say it could not
    warnings.filterwarnings("ignore", message="Could not find a config file in", category=UserWarning)


def small_model_hint(config, model) -> str | None:
    """A note when a small model gets a learning rate below the tiny model's preset (TinyLlama's, usually)."""
    from ftlab.config import RoundConfig

    params = sum(p.numel() for p in model.parameters())
    tiny_rate = RoundConfig.preset("cpu-tiny").learning_rate
    if params < SMALL_MODEL_PARAMS and config.learning_rate < tiny_rate:
        return (f"Note: learning_rate {config.learning_rate:g} is slow for a model this small ({params / 1e6:.1f}M "
                f"parameters): RoundConfig.preset('cpu-tiny') (learning_rate {tiny_rate:g}) gets further in the "
                "same steps, and env.default_preset picks it on a CPU.")
    return None


_TORCH_DEFAULT_THREADS: int | None = None  # torch's own choice, remembered before ftlab first changes it


def use_cpu_threads(model=None) -> int:
    """Choose torch's CPU threads for training ``model`` (default: ftlab's tiny model); returns the number.

    torch's threads spin while they wait for each other. On 2 shared cores (free Colab and Kaggle CPU
    runtimes, CI) the demo's round took 98 s with torch's two threads and 318 s beside one more busy
    process; with one thread 6.7-7.2 s and 8.3-15.4 s (benchmarks/bench_cpu_threads.py, on a machine
    that other jobs were also using). So a small model on the CPU
    gets one thread; a bigger one keeps torch's default; on a GPU nothing changes. ``OMP_NUM_THREADS``
    or ``FTLAB_CPU_THREADS`` in the environment win over ftlab's choice.
    """
    import torch

    global _TORCH_DEFAULT_THREADS
    if _TORCH_DEFAULT_THREADS is None:
        _TORCH_DEFAULT_THREADS = torch.get_num_threads()
    asked = os.environ.get("FTLAB_CPU_THREADS")
    if asked:
        threads = int(asked)
    elif torch.cuda.is_available() or os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        params = sum(p.numel() for p in model.parameters()) if model is not None else 0
        threads = 1 if params < SMALL_MODEL_PARAMS else _TORCH_DEFAULT_THREADS
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def choose_gpus(found: int, wanted: int, environ, cuda_started: bool) -> str | None:
    """With several GPUs visible, show CUDA only ``wanted`` of them, before CUDA starts; say what was done.

    Two visible GPUs and an unquantized model make transformers' Trainer wrap it in ``nn.DataParallel``:
    the effective batch doubles against Colab's one T4 and the weights are copied every step. A GPU
    hidden with ``CUDA_VISIBLE_DEVICES`` before CUDA starts is not seen by anything in the process.
    """
    if found <= wanted or int(environ.get("WORLD_SIZE", "1")) > 1:  # a launcher's process: it has its own GPU
        return None
    if "CUDA_VISIBLE_DEVICES" in environ:
        return (f"{found} GPUs visible through CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']!r} (yours, "
                "kept): the trainer will use them all (nn.DataParallel).")
    if cuda_started:
        return (f"{found} GPUs visible and CUDA already started, so ftlab cannot hide one: the trainer will use "
                f"all {found} (nn.DataParallel, a {found}x effective batch). Restart the kernel and call "
                "ftlab.setup() first.")
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(wanted))
    return (f"{found} GPUs found (Kaggle's T4 x2?): ftlab made {'only GPU 0' if wanted == 1 else f'{wanted}'} "
            f"visible (CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']}), so a round trains as on Colab. "
            "ftlab.setup(gpus=2) keeps both; to train on both, launch one process per GPU "
            "(ftlab.distributed.launch in a notebook, or torchrun).")


def setup(verbose: bool = True, check_hub: bool = True, gpus: int = 1, model: str | None = None) -> Environment:
    """Detect the platform, GPU and Hub, choose precision and default model, print a banner.

    ``gpus``: how many GPUs training may use (default one: on Kaggle's T4 x2 the second is hidden before
    CUDA starts, so call setup() first in a notebook). ``model``: the model you bring (a Hub id or a
    folder); it becomes ``env.default_model`` and the banner does not offer ftlab's tiny model instead.
    """
    import torch

    from ftlab.presets import DEFAULT_MODEL

    quiet_known_noise()
    # torch counts GPUs without starting CUDA (NVML), and does not cache the count until CUDA starts
    choice = choose_gpus(torch.cuda.device_count(), gpus, os.environ, torch.cuda.is_initialized())
    name, count, capability, memory = gpu_info()
    online = hub_online() if check_hub else False
    precision = choose_precision(capability)
    env = Environment(
        platform=detect_platform(), has_gpu=name is not None, gpu_name=name, gpu_count=count,
        capability=capability, gpu_memory_gib=memory, native_bf16=precision == "bf16", precision=precision,
        cpu_threads=use_cpu_threads() if name is None else torch.get_num_threads(), hub_online=online,
        default_model=model or (DEFAULT_MODEL if (name is not None and online) else "tiny"),
        python=sys.version.split()[0], torch=torch.__version__, gpu_choice=choice, tiny_params=_tiny_size(),
    )
    if verbose:
        print(env.banner())
    return env
