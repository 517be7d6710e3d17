"""The ``ftlab`` command: ``doctor`` (what is this machine?), ``demo`` (one whole round, recorded in the
lab), ``train CONFIG.yaml`` (a round described in a file, ``ftlab.configfile``; also under torchrun and
``accelerate launch``, ``ftlab.distributed``), ``plan`` (will it fit on a GPU? ``ftlab.plan`` /
``ftlab.suggest``), ``runs`` (the lab book's table). ``exercises`` is for maintainers and left out of ``--help``.

A mistake in a command line is answered with one line on stderr and a non-zero exit, never a
traceback; ``ftlab runs | head`` ends quietly when ``head`` stops reading.

It answers ``--help`` and ``doctor`` in about a second: nothing here imports torch or transformers
unless the chosen command needs them (versions come from package metadata, the GPU from
``ftlab.machine.gpus``, which asks nvidia-smi when torch is not loaded).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from importlib import metadata

from ftlab.console.quiet import quiet_known_noise, quiet_libraries
from ftlab.course import exercises as ex
from ftlab.distributed import is_main, launcher, too_few_gpus, world_size
from ftlab.env import course_model, setup
from ftlab.lab import Lab
from ftlab.machine import VERSION, choose_precision, detect_platform, gpus, hub_online, library_versions
from ftlab.memory.estimate import plan
from ftlab.memory.suggestions import suggest
from ftlab.models.loading import DEFAULT_MODEL
from ftlab.models.smollm2 import ModelNotAvailableError, smol_status


def doctor() -> int:
    print(f"ftlab {VERSION} on Python {sys.version.split()[0]} ({detect_platform()})")
    found = gpus()  # nvidia-smi: torch is not imported here
    for gpu in found:
        print(f"GPU: {gpu.name}, compute capability {'.'.join(map(str, gpu.capability))}, "
              f"{gpu.memory_gib:.1f} GiB -> {choose_precision(gpu.capability)}")
    if not found:
        print("GPU: none found -> fp32 on the CPU")
    if len(found) > 1:
        print(f"  {len(found)} GPUs: a notebook trains on one (cuda:0); on all of them: torchrun --nproc_per_node "
              f"{len(found)} -m ftlab.cli train CONFIG.yaml (docs/scale-out.md)")
    online = hub_online()
    print(f"Hugging Face Hub: {'reachable' if online else 'not reachable (offline mode or no network)'}")
    print(f"SmolLM2-135M-Instruct: {smol_status()}")
    name, reason = course_model(bool(found), online)
    shown = "ftlab's tiny model" if name == "tiny" else name
    print(f"The course's model here: {shown} ({reason})")
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
    lab = Lab(args.path) if args.path else Lab.default()
    if not lab.path.is_dir() and args.path:
        raise CommandError(f"no lab folder {lab.path}: give the folder a Lab was created with")
    rounds, damaged = lab.rounds(), lab.unreadable()
    if not rounds and not damaged:
        print(f"No rounds in {lab.path} yet: `ftlab demo` trains one, or lab.train(config, model, tokenizer, "
              "train, eval) in a notebook.")
        return 0
    baseline = args.baseline
    if baseline is not None:
        known = {str(r.id) for r in rounds} | {r.name for r in rounds if r.name}
        if baseline not in known:
            raise CommandError(f"--baseline {baseline}: no such round in {lab.path} (ids {', '.join(sorted(known))})")
        baseline = int(baseline) if baseline.isdigit() else baseline
    table = lab.table(baseline, all_knobs=args.all_knobs)
    if args.csv:
        table.to_csv(args.csv)
    if args.markdown:
        lab.to_markdown(args.markdown, baseline)
    marked = f"; **bold** = differs from baseline round {table.attrs['baseline']}" if rounds else ""
    print(f"{lab.path}: {len(table)} round(s){f', {len(damaged)} unreadable' if damaged else ''}{marked}\n")
    print(lab.to_markdown(baseline=baseline))
    for round_ in damaged:  # the table's cell is cut by the terminal: the whole message once, below it
        print(round_.verdict())
    if any(r.tracker_files and r.record["tracker"]["name"] == "tensorboard" for r in rounds):
        print(f"\nTensorBoard curves of every round: tensorboard --logdir {lab.path}")
    return 0


def train_from_file(args) -> int:
    """``ftlab train CONFIG.yaml``: check the file (before anything loads), then train the round in the lab.

    Under torchrun or ``accelerate launch`` every process runs this; only the main one prints and writes the lab.
    """
    from ftlab.configfile import read

    spec = read(args.config)
    processes = world_size()
    if processes > 1 and (problem := too_few_gpus()):
        raise CommandError(problem)
    if is_main():
        how = f", {processes} processes ({launcher()})" if processes > 1 else ""
        steps = f"{spec.config.max_steps} steps" if spec.config.max_steps > 0 else f"{spec.config.num_train_epochs:g} epoch(s)"
        print(f"{args.config}: preset {spec.preset}, model {spec.model}, {steps}, effective batch "
              f"{spec.config.batch_size} x {spec.config.gradient_accumulation_steps}"
              f"{f' x {processes}' if processes > 1 else ''} = {spec.config.effective_batch_size * processes}{how}")
    if args.check:
        if is_main():
            print(spec.config)
        return 0
    quiet_known_noise()  # before the learning stack is imported: its import-time notes are noise here
    from ftlab.round.progress import KEEP_TRAINERS, LossLines

    with contextlib.ExitStack() as quiet:
        if not is_main():  # the other processes' lines would repeat the main one's
            quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
        setup(verbose=True, model=spec.model)  # the banner speaks of the file's model
        callbacks = []
        if args.verbose:  # the trainer's own bars and dictionaries, as the help says; unset again after the round
            quiet.callback(lambda old=os.environ.get(KEEP_TRAINERS): os.environ.pop(KEEP_TRAINERS) if old is None
                           else os.environ.update({KEEP_TRAINERS: old}))
            os.environ[KEEP_TRAINERS] = "1"
        else:  # one line per evaluation
            callbacks = [LossLines(sys.stdout)]
            quiet.enter_context(quiet_libraries(transformers_bars=True, transformers_logs=True))
            quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
        round_ = spec.train_round(callbacks)
    if is_main():
        print(round_.verdict())
    if round_.status != "succeeded":
        return 1
    if is_main():
        metrics = round_.metrics
        print(f"Eval loss {metrics['eval_loss_before']:.3f} -> {metrics['eval_loss']:.3f} in "
              f"{metrics['wall_time_s']:.1f} s." if metrics.get("eval_loss") is not None else
              f"Train loss {metrics['train_loss']:.3f} in {metrics['wall_time_s']:.1f} s.",
              f"Recorded in {round_.path}: `ftlab runs {round_.path.parent}` shows it beside the others.")
    return 0


def show_plan(args) -> int:
    """``ftlab plan``: the peak GPU memory of a round, term by term (or, with --suggest, the fastest that fits)."""
    gpu = args.gpu  # a name, or a memory size in GiB (ftlab.memory.gpus.gpu_spec reads both)
    if args.config:
        from ftlab.configfile import read

        spec = read(args.config)
        print(plan(args.model or spec.model, gpu=gpu, config=spec.config, rows=args.rows))
        return 0
    model = args.model or DEFAULT_MODEL
    if args.suggest:
        if args.rows is None or args.max_length is None:
            raise CommandError("--suggest needs --rows and --max-length (the longest row in tokens), or "
                               "ftlab.suggest(lengths=...) in Python with every row's length")
        print(suggest(args.effective_batch, gpu=gpu, model=model, max_length=args.max_length, rows=args.rows,
                      lora_r=args.lora_r or 16, quantizations=(args.quantization,) if args.quantization
                      else (None, "4bit")))
        return 0
    knobs = {k: v for k, v in (("batch_size", args.batch_size), ("max_length", args.max_length),
                               ("lora_r", args.lora_r)) if v is not None}
    print(plan(model, quantization=args.quantization, gpu=gpu, rows=args.rows, **knobs))
    return 0


class CommandError(Exception):
    """A mistake in how a command was called: printed as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse that refuses a bad argument with one line (and a pointer to --help), not the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, at least 1 (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number, at least 1 (got {value})")
    return value


def parser() -> argparse.ArgumentParser:
    main = Parser(prog="ftlab", description="A fine-tuning lab for learners: LoRA and QLoRA of TinyLlama on "
                  "free GPUs, and of a tiny model on any CPU.")
    commands = main.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.add_parser("doctor", help="what this machine is: platform, GPU, precision, Hub, library versions")
    demo = commands.add_parser("demo", help="one complete fine-tuning round, recorded in the lab")
    demo.add_argument("--steps", type=positive, default=None, help="optimiser steps (default: 120 on CPU, 60 on GPU)")
    demo.add_argument("--lab", metavar="PATH", default=None,
                      help="the lab folder to record the round in (default: $FTLAB_LAB, else this platform's, "
                           "./lab locally)")
    train = commands.add_parser("train", help="train the round a YAML file describes, recorded in the lab "
                                "(also under torchrun / accelerate launch)",
                                description="Train the round CONFIG.yaml describes: RoundConfig's knobs under their "
                                "own names, plus preset, model, train, eval, template, lab, name and notes (see "
                                "ftlab.configfile). Several processes: torchrun --nproc_per_node 2 -m ftlab.cli "
                                "train CONFIG.yaml")
    train.add_argument("config", metavar="CONFIG.yaml", help="the round's file")
    train.add_argument("--check", action="store_true", help="check the file and print the round's knobs; train nothing")
    train.add_argument("--verbose", action="store_true", help="the trainer's own logs and progress bars, not one "
                       "line per evaluation")
    plan = commands.add_parser("plan", help="will a round fit on a GPU, and how long will an epoch take (no GPU "
                               "needed)")
    plan.add_argument("config", metavar="CONFIG.yaml", nargs="?", default=None,
                      help="a round's file (its model and knobs); without it, the options below")
    plan.add_argument("--model", default=None, help="a Hub id, a folder or 'tiny' (default: TinyLlama-1.1B-Chat)")
    plan.add_argument("--gpu", default="T4", help="a GPU's name (T4, L4, A100) or its memory in GiB (default T4)")
    plan.add_argument("--quantization", choices=["4bit", "8bit"], default=None, help="load the base in 4 or 8 bits")
    plan.add_argument("--batch-size", type=positive, default=None, help="rows per forward pass")
    plan.add_argument("--max-length", type=positive, default=None, help="the longest row, in tokens")
    plan.add_argument("--lora-r", type=positive, default=None, help="LoRA rank")
    plan.add_argument("--rows", type=positive, default=None, help="training rows: adds the time per epoch")
    plan.add_argument("--suggest", action="store_true", help="the fastest settings that fit (ftlab.suggest)")
    plan.add_argument("--effective-batch", type=positive, default=16, help="with --suggest: rows per optimiser step")
    runs = commands.add_parser("runs", help="the lab book's table of rounds (status, knobs, metrics)")
    runs.add_argument("path", nargs="?", default=None,
                      help="the lab folder (default: $FTLAB_LAB, else this platform's, ./lab locally)")
    runs.add_argument("--baseline", default=None, help="round id (or name) that the changed knobs are marked against")
    runs.add_argument("--all-knobs", action="store_true", help="every knob as a column, not only the main ones")
    runs.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    runs.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    # maintainers' command, left out of the learners' help (no help= keeps it out of the list)
    exercises = commands.add_parser("exercises", description="Maintainers: build the learners' exercise notebooks "
                                    "from the solutions and the setup cells from ftlab.course.install (a source checkout).")
    exercises.add_argument("action", choices=["build", "check"], help="build: write them; check: fail on drift")
    return main


def run(args) -> int:
    if args.command == "doctor":
        return doctor()
    if args.command == "demo":
        quiet_known_noise()  # before the learning stack is imported: its import-time notes are noise here
        from ftlab.course.demo import run_demo

        return 0 if run_demo(lab=args.lab, max_steps=args.steps).status == "succeeded" else 1
    if args.command == "runs":
        return show_runs(args)
    if args.command == "train":
        return train_from_file(args)
    if args.command == "plan":
        return show_plan(args)
    if args.command == "exercises":
        return ex.build() if args.action == "build" else ex.check()
    parser().print_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    where = f"ftlab {args.command}" if args.command else "ftlab"
    try:
        return run(args)
    except BrokenPipeError:  # `ftlab runs | head`: the reader has gone; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"\n{where}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, OSError, ValueError, KeyError, ModelNotAvailableError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{where}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
