"""The ``ftlab`` command: ``doctor`` (what is this machine?), ``demo`` (one whole round), ``exercises``,
``runs`` (the lab book's table).

It answers ``--help`` and ``doctor`` in about a second: nothing here imports torch or transformers
unless the chosen command needs them (versions come from package metadata, the GPU from nvidia-smi).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import metadata


def _gpus() -> list[tuple[str, str, str]]:
    """(name, compute capability, memory) per GPU, from nvidia-smi; empty without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [tuple(part.strip() for part in line.split(",")) for line in out.stdout.splitlines() if line.strip()]


def doctor() -> int:
    from ftlab import __version__
    from ftlab.env import choose_precision, detect_platform, hub_online, library_versions

    print(f"ftlab {__version__} on Python {sys.version.split()[0]} ({detect_platform()})")
    gpus = _gpus()
    for name, capability, memory in gpus:
        major, minor = (int(x) for x in capability.split("."))
        print(f"GPU: {name}, compute capability {capability}, {memory} -> {choose_precision((major, minor))}")
    if not gpus:
        print("GPU: none found -> fp32 on the CPU, with ftlab's tiny model")
    if len(gpus) > 1:
        print(f"  {len(gpus)} GPUs: ftlab trains on one (cuda:0)")
    print(f"Hugging Face Hub: {'reachable' if hub_online() else 'not reachable (offline mode or no network)'}")
    from ftlab.gguf_models import smol_status

    print(f"SmolLM2-135M-Instruct: {smol_status()}")
    tested = _tested_versions()
    for package, have in library_versions().items():
        have = have or "not installed"
        want = tested.get(package.lower())
        note = "" if want in (None, have) else f"   (ftlab was tested with {want})"
        print(f"  {package:<13} {have}{note}")
    return 0


def _tested_versions() -> dict[str, str]:
    try:
        requires = metadata.requires("ftlab") or []
    except metadata.PackageNotFoundError:
        return {}
    pins = [r.split(";")[0].strip() for r in requires if "extra == \"tested\"" in r and "==" in r]
    return {p.split("==")[0].lower().replace("_", "-"): p.split("==")[1] for p in pins}


def show_runs(args) -> int:
    """``ftlab runs [PATH]``: the table from JSON records and pandas; torch is never imported."""
    from ftlab.lab import Lab

    lab = Lab(args.path) if args.path else Lab.default()
    if not lab.rounds():
        print(f"No rounds in {lab.path} yet: train one with lab.train(config, model, tokenizer, train, eval).")
        return 0
    baseline = int(args.baseline) if args.baseline and args.baseline.isdigit() else args.baseline
    table = lab.table(baseline, all_knobs=args.all_knobs)
    if args.csv:
        table.to_csv(args.csv)
    if args.markdown:
        lab.to_markdown(args.markdown, baseline)
    print(f"{lab.path}: {len(table)} round(s); **bold** = differs from baseline round {table.attrs['baseline']}\n")
    print(lab.to_markdown(baseline=baseline))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ftlab", description="A fine-tuning lab for learners: LoRA and QLoRA "
                                     "of TinyLlama on free GPUs, and of a tiny model on any CPU.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("doctor", help="what this machine is: platform, GPU, precision, Hub, library versions")
    demo = commands.add_parser("demo", help="one complete fine-tuning round (under a minute on a CPU)")
    demo.add_argument("--output-dir", default="ftlab-runs/demo", help="where the adapter and logs go")
    demo.add_argument("--steps", type=int, default=None, help="optimiser steps (default: 120 on CPU, 60 on GPU)")
    exercises = commands.add_parser("exercises", help="build the learners' exercise notebooks from the solutions")
    exercises.add_argument("action", choices=["build", "check"], help="build: write them; check: fail on drift")
    runs = commands.add_parser("runs", help="the lab book's table of rounds (status, knobs, metrics)")
    runs.add_argument("path", nargs="?", default=None, help="the lab folder (default: this platform's, ./lab locally)")
    runs.add_argument("--baseline", default=None, help="round id (or name) that the changed knobs are marked against")
    runs.add_argument("--all-knobs", action="store_true", help="every knob as a column, not only the main ones")
    runs.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    runs.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        return doctor()
    if args.command == "demo":
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from ftlab.demo import run_demo

        run_demo(output_dir=args.output_dir, max_steps=args.steps)
        return 0
    if args.command == "runs":
        return show_runs(args)
    if args.command == "exercises":
        from ftlab import exercises as ex

        return ex.build() if args.action == "build" else ex.check()
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
