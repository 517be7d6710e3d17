"""What this machine is and what it can reach: platform, GPUs, precision, CPU threads, the Hugging Face Hub.

Facts, read without importing torch where it can be avoided, and the rules that follow from them alone:

* ``VERSION``: ftlab's own version; ``library_versions``: the learning stack's, from package metadata.
* ``detect_platform``: Colab, Kaggle or local; ``gpus``: ftlab's one GPU reader, ``has_gpu``: its one "may
  this process compute on a GPU" (every other module asks it, not ``torch.cuda``), and ``gpu_info``: the GPU
  that decisions assume (precision, presets, plans).
* ``rehearsal``: ``FTLAB_REHEARSE=T4`` (or ``ftlab.setup(rehearse="T4")``) makes every decision as on a Tesla T4
  while rounds run on the CPU through the T4's code path: ``gpu_info`` answers with the T4, ``has_gpu`` says no
  (nothing goes to CUDA). ``REHEARSAL_CANNOT_SHOW`` names what such a rehearsal cannot show.
* ``choose_precision``: bf16 needs compute capability 8.0 (Ampere) or newer, a T4 (7.5) gets fp16, a CPU
  fp32. ``torch.cuda.is_bf16_supported()`` is never asked: it says True on a T4, where bf16 is only emulated.
* ``use_cpu_threads``: one torch thread for a small model on a CPU (torch's threads spin while they wait).
* ``hub_online``: ftlab's one Hub probe. It asks the Hub (or the mirror ``HF_ENDPOINT`` names) the way the
  Hub client does, with a short timeout, so a notebook offline (Kaggle's "Internet off",
  ``HF_HUB_OFFLINE=1``) learns it in about a second instead of after the libraries' retries.
* ``HubUnavailableError`` / ``hub_unavailable``: ftlab's one "the Hub cannot be reached" error and its message,
  for a data set and a model alike: what could not be loaded, why, and what to use instead.

``ftlab.setup()`` (``ftlab.env``) puts these together into one banner.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata

VERSION = "0.1.0"  # ftlab's own version, ``ftlab.__version__`` (pyproject.toml says the same: RELEASING.md)
BF16_MIN_CAPABILITY = (8, 0)  # Ampere: the first generation with native bf16 tensor cores
# Below this many parameters a model's matrices are too small to share between cores: one thread is as
# fast as two on an idle machine and stays fast on a busy one (see use_cpu_threads).
SMALL_MODEL_PARAMS = 30_000_000
STACK = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "evaluate")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the learning stack, from package metadata (nothing heavy is imported)."""
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


FAST_VARIABLE = "FTLAB_FAST"  # "1": every chapter on ftlab's tiny model, in seconds (tests and CI set it)


def fast_run(environ=os.environ) -> bool:
    """Whether a fast run was asked for (``FTLAB_FAST`` set to anything but "" or "0"): a test or CI run."""
    return environ.get(FAST_VARIABLE, "").strip() not in ("", "0")


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


# The GPUs a CPU can rehearse: their facts as torch reports them on Colab and Kaggle (a T4: 15,095 MiB total)
REHEARSALS = {"T4": GPU("Tesla T4", (7, 5), 14.74)}
REHEARSE_VARIABLE = "FTLAB_REHEARSE"
# What running a GPU's code path on the CPU cannot show, said wherever a rehearsed round reports itself
REHEARSAL_CANNOT_SHOW = ("CUDA kernels (cuBLAS fp16 matmuls, bitsandbytes' CUDA 4-bit kernels, fused attention)",
                         "GPU memory (peak allocated and reserved, out-of-memory)",
                         "speed (a T4's tokens/s and time per epoch: ftlab.plan estimates them)",
                         "a paged optimizer's paging (bitsandbytes pages only CUDA memory: on the CPU 8-bit AdamW "
                         "runs unpaged)")


def rehearsal(asked: str | None = None) -> GPU | None:
    """The GPU this CPU rehearses (``FTLAB_REHEARSE=T4``), or None: ftlab's one switch for "decide as on a T4".
    ``asked``: check that name instead of the environment's (``ftlab.setup(rehearse=...)`` does, before setting it).

    Under it every decision is made as on that GPU (``gpu_info``: precision, presets, plans) while nothing
    leaves the CPU (``has_gpu`` is False): fp16 weights, fp16 autocast with the gradient scaler, 4-bit QLoRA
    with fp16 compute all run on the CPU, so the T4's code path is executed without a T4.
    """
    asked = (os.environ.get(REHEARSE_VARIABLE, "") if asked is None else asked).strip()
    if not asked:
        return None
    key = asked.upper().removeprefix("TESLA ").strip()
    if key not in REHEARSALS:
        raise ValueError(f"rehearse {asked!r}: ftlab can rehearse {', '.join(sorted(REHEARSALS))} on the "
                         f"CPU; set {REHEARSE_VARIABLE}=T4, or unset it to run as this machine is")
    return REHEARSALS[key]


def has_gpu() -> bool:
    """Whether this process may compute on a GPU: ftlab's one "is there a GPU" question.

    False while rehearsing a GPU on the CPU (``rehearsal``): its rounds run on the CPU. Otherwise torch's answer
    when torch is loaded already (``torch.cuda.is_available`` starts no CUDA context, so a launcher can still fork
    after it, and ``gpus()`` is not asked: reading a GPU's properties starts one); else whether ``nvidia-smi``
    lists a GPU this process may use, without importing torch.
    """
    if rehearsal() is not None:
        return False
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.cuda.is_available()
    return bool(gpus())


def gpu_decides() -> bool:
    """Whether a GPU decides this process's rounds (presets, optimisers): one it may use, or one rehearsed on the
    CPU. Read without importing torch."""
    return rehearsal() is not None or has_gpu()


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
    """(name, count, compute capability, memory in GiB) of the GPU that decisions assume, or Nones without one.

    GPU 0 as torch sees it; while rehearsing (``rehearsal``), the rehearsed GPU, although rounds run on the CPU.
    """
    rehearsed = rehearsal()
    if rehearsed is not None:
        return rehearsed.name, 1, rehearsed.capability, rehearsed.memory_gib
    import torch  # noqa: F401 - the training path: read the GPUs as torch sees them

    found = gpus()
    if not found:
        return None, 0, None, None
    return found[0].name, len(found), found[0].capability, found[0].memory_gib


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
    elif has_gpu() or os.environ.get("OMP_NUM_THREADS"):
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


TRUE = ("1", "ON", "YES", "TRUE")  # how huggingface_hub reads a flag


def hub_forced_offline() -> bool:
    """Whether the environment forbids the Hub: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (as huggingface_hub
    reads them), or HF_DATASETS_OFFLINE (as datasets does). Cached files may still be used."""
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(flag, "").strip().upper() in TRUE for flag in flags)


def hub_endpoint() -> str:
    """The Hub the libraries talk to: ``HF_ENDPOINT`` (a mirror) or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_online(timeout: float = 1.5) -> bool:
    """True when the Hub may be used: not forced offline, and ``hub_endpoint()`` answers within ``timeout``.

    ftlab's one Hub probe. It asks the way the Hub client does: over HTTP, through the proxy that
    HTTPS_PROXY / HTTP_PROXY / NO_PROXY name (urllib reads them as httpx does), to HF_ENDPOINT. Any
    HTTP answer counts as reachable; no answer in time (DNS included) does not.
    """
    if hub_forced_offline():
        return False
    answered = []

    def probe():
        try:
            # an opener built now reads the proxy variables as they are now (urlopen's is built once)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler())
            opener.open(urllib.request.Request(hub_endpoint(), method="HEAD"), timeout=timeout).close()
            answered.append(True)
        except urllib.error.HTTPError:  # an error page is still the Hub (or its mirror) answering
            answered.append(True)
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=probe, daemon=True)  # a DNS lookup ignores socket timeouts
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered)


class HubUnavailableError(ConnectionError):
    """The Hugging Face Hub cannot be reached (offline mode, Kaggle's internet off, no network) and what was
    asked for is not in the local cache. ``hub_unavailable`` writes its message."""


def hub_unavailable(name: str, what: str, instead: str,
                    error: type[HubUnavailableError] = HubUnavailableError) -> HubUnavailableError:
    """The one "Hub cannot be reached" error for ``name`` (``what`` it is: "the data set", "the model"), its
    message ending with ``instead``, what to use offline. ``error``: a subclass that also says what failed."""
    return error(f"Cannot load {name!r}: the Hugging Face Hub is not reachable here (offline, HF_HUB_OFFLINE=1, "
                 f"or Kaggle with its internet off) and {what} is not in the local cache. {instead}")


def cpu_description() -> str:
    """The CPU's model name, its logical cores and the load average, for a rendering's header or a benchmark."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    except OSError:
        pass
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{name} ({os.cpu_count()} logical cores{load})"
