"""What ftlab's tiny model costs on this CPU: a learner's first `ftlab demo` on an empty cache (the shipped model
copied, then the demo's round), a build from the recipe (what the shipped model saves), and the course's round
(cpu-tiny preset on the demo task). Prints measured numbers with the machine's load; not a timed test.

    python benchmarks/bench_tiny.py [--threads N]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    import torch

    import ftlab
    from ftlab.models import tiny

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "FTLAB_CACHE": os.path.join(folder, "empty-cache"), "HF_HUB_OFFLINE": "1"}
        started = time.perf_counter()
        demo = subprocess.run([sys.executable, "-m", "ftlab.cli", "demo", "--lab", os.path.join(folder, "lab")],
                              capture_output=True, text=True, env=env)
        print(f"first `ftlab demo` on an empty cache: {time.perf_counter() - started:.1f} s "
              f"({'succeeded' if demo.returncode == 0 else 'FAILED: ' + demo.stderr[-500:]}), load average "
              f"{os.getloadavg()}")
        started = time.perf_counter()
        path = tiny.build(os.path.join(folder, "tiny"), progress=False)
        print(f"build: {time.perf_counter() - started:.0f} s ({tiny.ARCHITECTURE}, {tiny.PRETRAIN})")
        model, tokenizer = ftlab.tiny_model(path=path, progress=False)
        train, evaluation = ftlab.data.course_set("demo")
        started = time.perf_counter()
        result = ftlab.train_round(ftlab.RoundConfig.preset("cpu-tiny"), model, tokenizer, train, evaluation,
                                   output_dir=os.path.join(folder, "round"))
        print(f"cpu-tiny round on the demo task: {time.perf_counter() - started:.1f} s in all, "
              f"{result.wall_time_s:.1f} s training; eval loss {result.eval_loss_before:.2f} -> {result.eval_loss:.2f}; "
              f"trainable share {result.trainable_share:.2%}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
