"""The demo's round on the CPU, idle and beside one busy process: torch's default threads against ftlab's.

Free Colab and Kaggle CPU runtimes and CI machines have 2 shared vCPUs. torch's intra-op threads spin
while they wait for each other, so one other busy process can stall every step. ``ftlab.machine.
use_cpu_threads`` gives a small model one thread. This runs ``ftlab demo``'s round (the tiny model,
preset cpu-tiny, 120 steps, the demo's data, its seed) in a fresh process for each case:

- threads: torch's default (``FTLAB_CPU_THREADS`` = the core count) or ftlab's choice;
- load: idle, or beside one ``while True: pass`` process;

and prints the round's wall time (training only, as the lab records it), the CPU time the whole
round took (evaluations and saving included: spinning threads inflate it, a fair share of a busy
machine does not), and the eval loss (the same in every case when the round is deterministic). Target: busy within 1.5x of idle with ftlab's threads.
The machine's load average is printed with each figure: other users of the machine count too.

    python benchmarks/bench_cpu_threads.py [--repeats 2] [--steps 120] [--threads both|ftlab|default]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROUND = """
import json, sys, time, tempfile, contextlib, io, resource
import torch
import ftlab
from ftlab.course.demo import demo_data
model, tokenizer = ftlab.tiny_model(progress=False)
train, evaluation = demo_data()
config = ftlab.RoundConfig.preset("cpu-tiny", max_steps=int(sys.argv[1]), eval_steps=20)
cpu = lambda: sum(getattr(resource.getrusage(resource.RUSAGE_SELF), f) for f in ("ru_utime", "ru_stime"))
before = cpu()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    round_ = ftlab.Lab(tempfile.mkdtemp()).train(config, model, tokenizer, train, evaluation, samples=0)
print(json.dumps({"wall_s": round_.metrics["wall_time_s"], "eval_loss": round_.metrics["eval_loss"],
                  "threads": torch.get_num_threads(), "cpu_s": cpu() - before}))
"""


def one_round(steps: int, default_threads: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FTLAB_CPU_THREADS")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false")
    if default_threads:
        env["FTLAB_CPU_THREADS"] = str(os.cpu_count())
    out = subprocess.run([sys.executable, "-c", ROUND, str(steps)], capture_output=True, text=True, env=env,
                         timeout=900)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--threads", choices=["both", "ftlab", "default"], default="both",
                        help="which thread settings to time (torch's default is slow on a busy machine)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; the demo's round, {args.steps} steps; wall time of the training only\n")
    print(f"{'threads':<18} {'load':<28} {'round (s)':>10} {'CPU (s)':>8} {'eval loss':>10} {'load avg (1 min)':>17}")
    cases = {"both": (False, True), "ftlab": (False,), "default": (True,)}[args.threads]
    for default_threads in cases:
        for busy in (False, True):
            competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                time.sleep(1 if busy else 0)
                for _ in range(args.repeats):
                    found = one_round(args.steps, default_threads)
                    label = f"torch default ({found['threads']})" if default_threads else f"ftlab ({found['threads']})"
                    load = "one busy process beside it" if busy else "idle"
                    print(f"{label:<18} {load:<28} {found['wall_s']:>10.1f} {found['cpu_s']:>8.1f} {found['eval_loss']:>10.4f} "
                          f"{os.getloadavg()[0]:>17.2f}", flush=True)
            finally:
                if competitor:
                    competitor.kill()
                    competitor.wait()


if __name__ == "__main__":
    main()
