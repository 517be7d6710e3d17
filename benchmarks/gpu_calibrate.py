"""Measure what ftlab.plan estimates, on the GPU at hand, and write the calibration file the planner reads.

No download: a randomly initialised model with TinyLlama-1.1B's exact config (speed and memory do not
depend on the weights' values). For each of (LoRA fp16, QLoRA NF4) x (gradient checkpointing on, off) x
(two row lengths) x (padded, padding-free) it runs a few real SFTTrainer steps through ftlab's own
RoundConfig -> SFTConfig, and records the peak memory (allocated and reserved), the token positions per
second and the useful-token ratio next to the plan's prediction for the same round. From those runs it
fits the planner's estimated constants (achieved TFLOPS, QLoRA slowdown, CUDA context, allocator slack,
activation scale) and writes them, with every run, to ``ftlab/memory/calibration/<GPU>.json`` (or ``--out``).

    python benchmarks/gpu_calibrate.py                 # on a GPU: ~16 runs of a few steps
    python benchmarks/gpu_calibrate.py --smoke         # anywhere: a tiny config on the CPU, checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

SMOKE_CONFIG = dict(model_type="llama", hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=False)


def random_model(config: dict, folder: Path, quantization: str | None, half, on_gpu: bool):
    """A randomly initialised model of ``config``, saved once and loaded as ftlab would (4-bit or not)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftlab.models.loading import quantization_config
    from ftlab.models.quantized import keep_4bit_trainable

    if not (folder / "config.json").exists():
        values = dict(config)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values),
                                                 dtype=half)
        model.save_pretrained(folder)
        del model
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=half, device_map={"": 0} if on_gpu else None,
        quantization_config=quantization_config(quantization, "fp16" if half == torch.float16 else "bf16")
        if quantization else None)
    keep_4bit_trainable(model)
    return model


def rows_of(length: int, count: int, vocab: int, seed: int = 0):
    """Pre-tokenized rows between a quarter and all of ``length`` tokens (so that padding matters)."""
    import random

    from datasets import Dataset

    rng = random.Random(seed)
    lengths = [rng.randint(length // 4, length) for _ in range(count)]
    ids = [[rng.randrange(3, vocab) for _ in range(n)] for n in lengths]
    return Dataset.from_dict({"input_ids": ids, "assistant_masks": [[1] * n for n in lengths]}), lengths


class StepClock:
    """Times the steps after the first (which pays for warm-up and allocation)."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 1:
                    clock.start, clock.positions_at_start = time.perf_counter(), clock.counter.positions

        self.callback, self.start, self.positions_at_start, self.counter = Callback(), None, 0, None


def one_run(model_config, folder, quantization, checkpointing, length, padding_free, steps, on_gpu, tokenizer):
    import torch
    from trl import SFTTrainer

    from ftlab.config import ATTENTION, RoundConfig
    from ftlab.machine import choose_precision
    from ftlab.memory.estimate import plan
    from ftlab.memory.gpus import gpu_for
    from ftlab.memory.shapes import model_shape
    from ftlab.round.train import add_lora, keep_trainables_fp32
    from ftlab.round.useful_tokens import count_useful_tokens

    precision = choose_precision(torch.cuda.get_device_capability()) if on_gpu else "fp32"
    half = torch.bfloat16 if precision == "bf16" else torch.float16  # the smoke run's CPU weights: fp16, as before
    batch = 4
    config = RoundConfig(learning_rate=1e-4, max_steps=steps, batch_size=batch, gradient_accumulation_steps=1,
                         lora_r=16, target_modules=list(ATTENTION), max_length=length,
                         gradient_checkpointing=checkpointing, quantization=quantization, padding_free=padding_free,
                         logging_steps=steps, warmup=0)
    data, lengths = rows_of(length, batch * (steps + 1), model_config["vocab_size"])
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = random_model(model_config, folder, quantization, half if on_gpu else torch.float32, on_gpu)
    tuned = add_lora(model, config)
    with tempfile.TemporaryDirectory() as out:
        trainer = SFTTrainer(model=tuned, args=config.sft_config(out, precision, False, False, on_gpu),
                             train_dataset=data, processing_class=tokenizer)
        keep_trainables_fp32(trainer.model)
        clock = StepClock()
        clock.counter = count_useful_tokens(trainer)
        trainer.add_callback(clock.callback)
        trainer.train()
        seconds = time.perf_counter() - clock.start
    gpu = gpu_for(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory / 2**30) \
        if on_gpu else 15.0
    predicted = plan(model_shape(model_config), config=config, gpu=gpu, lengths=lengths[:batch * steps])
    run = {"quantization": quantization, "checkpointing": checkpointing, "length": length,
           "padding_free": padding_free, "batch_size": batch, "steps": steps,
           "tokens_per_s": (clock.counter.positions - clock.positions_at_start) / seconds,
           "useful_token_ratio": clock.counter.ratio,
           "predicted": {t.name: t.bytes for t in predicted.terms}, "predicted_peak_gib": predicted.peak_gib}
    if on_gpu:
        run["allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        run["reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    del trainer, tuned, model
    return run


def fit_constants(runs, model_config, gpu_name, context_gib):
    """The planner's estimated constants, from the measured runs."""
    from ftlab.memory.estimate import flops_per_token
    from ftlab.memory.shapes import model_shape

    shape = model_shape(model_config)
    n_lora = shape.lora_params(16, ["q_proj", "k_proj", "v_proj", "o_proj"])
    achieved, slowdown, scale, slack = [], [], [], []
    for run in runs:
        flops = flops_per_token(shape, n_lora, run["length"] * 0.625, run["checkpointing"])  # mean of U(L/4, L)
        if run["quantization"] is None:
            achieved.append(run["tokens_per_s"] * flops / 1e12)
        else:
            twin = next(r for r in runs if r["quantization"] is None and all(
                r[k] == run[k] for k in ("checkpointing", "length", "padding_free")))
            slowdown.append(twin["tokens_per_s"] / run["tokens_per_s"])
        if "allocated_gib" in run:
            terms = run["predicted"]
            acts = next(v for k, v in terms.items() if k.startswith("activations"))
            loss = next(v for k, v in terms.items() if k.startswith("logits"))
            fixed = sum(v for k, v in terms.items() if k.startswith(("weights", "LoRA"))) + loss
            scale.append((run["allocated_gib"] * 2**30 - fixed) / acts)
            slack.append((run["reserved_gib"] - run["allocated_gib"]) * 2**30 / (acts + loss))
    constants = {"achieved_tflops": statistics.median(achieved), "qlora_slowdown": statistics.median(slowdown)}
    if scale:
        constants.update(activation_scale=statistics.median(scale), slack=max(0.0, statistics.median(slack)),
                         context_gib=context_gib)
    return {"gpu": gpu_name, "constants": constants, "runs": runs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny config on the CPU: checks the script, no figures")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--lengths", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    import ftlab
    from ftlab.memory.gpus import CALIBRATION_DIR, gpu_key
    from ftlab.memory.shapes import TINYLLAMA

    on_gpu = torch.cuda.is_available() and not args.smoke
    if not on_gpu and not args.smoke:
        print("No GPU here: the calibration measures a GPU. Run with --smoke to check the script on the CPU.")
        return 2
    model_config = TINYLLAMA if on_gpu else SMOKE_CONFIG
    lengths = args.lengths if on_gpu else (32, 64)
    steps = args.steps if on_gpu else 2
    _, tokenizer = ftlab.tiny_model()  # only its pad token is used: the rows are token ids already
    context_gib = None
    if on_gpu:
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info()
        context_gib = (total - free) / 2**30  # what CUDA holds before PyTorch allocates anything
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for quantization in (None, "4bit"):
            for checkpointing in (False, True):
                for length in lengths:
                    for padding_free in (False, True):
                        run = one_run(model_config, Path(folder), quantization, checkpointing, length,
                                      padding_free, steps, on_gpu, tokenizer)
                        runs.append(run)
                        measured = (f"{run['allocated_gib']:6.2f} / {run['reserved_gib']:6.2f} GiB"
                                    if on_gpu else "   (no GPU memory)   ")
                        print(f"{'QLoRA' if quantization else 'LoRA':<5} ckpt {checkpointing!s:<5} L {length:<5} "
                              f"{'padding-free' if padding_free else 'padded':<12} {measured}  plan "
                              f"{run['predicted_peak_gib']:6.2f} GiB  {run['tokens_per_s']:8.0f} tok/s  "
                              f"eta {run['useful_token_ratio']:.2f}", flush=True)
    gpu_name = torch.cuda.get_device_name(0) if on_gpu else "CPU smoke test"
    result = fit_constants(runs, model_config, gpu_name, context_gib)
    out = args.out or (CALIBRATION_DIR / f"{gpu_key(gpu_name)}.json" if on_gpu else Path("gpu_calibration_smoke.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"constants {json.dumps(result['constants'])}\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
