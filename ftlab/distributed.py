"""Scale-out: the same round on several processes (DDP), started by the standard launchers.

ftlab has no launcher of its own. ``torchrun`` and ``accelerate launch`` start N copies of
``ftlab train CONFIG.yaml``; transformers' Trainer (through accelerate) sees the ``RANK`` /
``WORLD_SIZE`` they set and runs DDP: each process holds a whole copy of the model, trains on its own
share of every batch, and the gradients are averaged across processes (all-reduce) before each
optimiser step, so every copy stays identical. One optimiser step then sees
``batch_size x gradient_accumulation_steps x world_size`` rows.

    torchrun --nproc_per_node 2 -m ftlab.cli train round.yaml
    accelerate launch --multi_gpu --num_processes 2 -m ftlab.cli train round.yaml

What this module adds is bookkeeping: which process this is (read from the launcher's environment, no
torch import), the lab folder handed from the main process to the others (``share``), a wait for all
(``barrier``), and ``launch`` for a notebook (Kaggle's two T4s), which checks that CUDA has not started
in the kernel, since the launcher forks and a forked process cannot use a CUDA started before it.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ftlab.machine import gpus, has_gpu


def world_size() -> int:
    """How many processes train this round (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's number among them; 0 is the main process, the one that writes the lab."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's number on this machine: the GPU it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def sharded() -> bool:
    """Whether ``accelerate launch`` was given an FSDP or DeepSpeed config: the model is then loaded whole on the
    CPU and the engine spreads it over the GPUs (``docs/scale-out.md``)."""
    return any(os.environ.get(k, "").lower() in ("1", "true") for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def too_few_gpus() -> str | None:
    """Why this launch cannot work, when it starts more processes on this machine than it has GPUs (two processes
    on one GPU make NCCL fail with "Duplicate GPU detected"); None when each process has its own GPU, or on a CPU."""
    here, found = int(os.environ.get("LOCAL_WORLD_SIZE", world_size())), len(gpus())
    if found == 0 or here <= found:
        return None
    return (f"{here} processes were started on this machine, and it has {found} GPU{'s' if found > 1 else ''}: "
            f"start one process per GPU (torchrun --nproc_per_node {found}), or CUDA_VISIBLE_DEVICES= to train "
            "on the CPU")


def launcher() -> str | None:
    """Which launcher started this process, as far as its environment tells (None: a plain process)."""
    if world_size() == 1:
        return None
    if any(k.startswith("ACCELERATE_") for k in os.environ):
        return "accelerate"
    return "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else "other"


def _state():
    """accelerate's view of the processes, which joins the process group (gloo on a CPU, nccl on GPUs).

    Asked for as the trainer will ask (``use_cpu`` without a GPU): accelerate keeps the first answer for
    the whole process, and a plain ``PartialState()`` on a CPU would make it a single process (no DDP).
    """
    from accelerate import (
        PartialState,  # loads torch: has_gpu() answers as torch does, as the trainer will ask
    )

    return PartialState(cpu=not has_gpu())


def share(value):
    """``value`` from the main process, in every process (the others pass anything, e.g. None)."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    _state()
    return broadcast_object_list([value], from_process=0)[0]


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if world_size() > 1:
        _state().wait_for_everyone()


@contextlib.contextmanager
def main_first():
    """The main process runs the block first, the others after it: a model built, downloaded or cached once,
    not by every process at the same time into the same folder."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def launch(function, *args, processes: int = 2):
    """Run ``function(*args)`` in ``processes`` processes from a notebook (DDP), through accelerate's
    ``notebook_launcher``: on Kaggle's T4 x2, ``processes=2`` trains on both GPUs.

    Call it before anything starts CUDA in the kernel (no model loaded, no ``ftlab.setup()``: they run
    inside ``function``, in each process). ``function`` must do its imports itself.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # torch's own question: has CUDA started (not: is there a GPU)
        raise RuntimeError("CUDA has already started in this kernel (a model was loaded, or ftlab.setup() read the "
                           "GPU), and the processes the launcher forks cannot use it. Restart the kernel and run "
                           "ftlab.distributed.launch(...) before anything else touches the GPU: setup and loading "
                           "go inside the function it runs.")
    if "bitsandbytes" in sys.modules:
        raise RuntimeError("bitsandbytes was imported in this kernel (it starts CUDA on import), so the launcher "
                           "cannot fork. Restart the kernel and import it only inside the function it runs.")
    from accelerate import notebook_launcher

    return notebook_launcher(function, args, num_processes=processes)
