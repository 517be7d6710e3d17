"""What each knob costs a LoRA step of SmolLM2-135M-Instruct on the CPU: CPU seconds per 8 rows.

bench_overhead.py compares whole rounds; this one takes the step apart. The same 8 chat rows go
forward and backward (no optimiser step) through LoRA layouts that differ in one knob at a time from
TRL's PEFT guide (r 32, alpha 16, dropout 0.05 on q_proj and v_proj, micro-batch 8, gradient
checkpointing, padded batches) and from ftlab's ``cpu-small`` preset (r 16, alpha 32, no dropout on
q, k, v and o, micro-batch 4, no checkpointing). Padded rows unless the name says otherwise. One torch
thread; CPU seconds of this process, which move far less with the machine's load than wall time.
It prints measured numbers; it is a benchmark, not a timed test.

    python benchmarks/bench_cpu_knobs.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

DOCS = dict(r=32, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])
FTLAB = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
# name: (LoRA settings, micro-batch, checkpointing, padding-free)
LAYOUTS = {
    "docs (TRL's PEFT guide)": (DOCS, 8, True, False),
    "docs, checkpointing off": (DOCS, 8, False, False),
    "ftlab cpu-small": (FTLAB, 4, False, False),
    "ftlab cpu-small, micro-batch 8": (FTLAB, 8, False, False),
    "ftlab cpu-small, LoRA dropout 0.05 (t4-lora's)": ({**FTLAB, "lora_dropout": 0.05}, 4, False, False),
    "ftlab cpu-small, padding-free": (FTLAB, 4, False, True),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    import ftlab
    from ftlab.data import instructions
    from ftlab.data.course_sets.synthetic import SKILLS

    torch.set_num_threads(1)
    base, tokenizer = ftlab.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    template = ftlab.Template.chat(tokenizer)
    rows = instructions(8 * args.repeats, [*SKILLS, "double_and_name", "greet_politely"], seed=5)
    ids = [template.encode(r["messages"])[0] for r in rows]
    random.Random(0).shuffle(ids)
    models = {}
    for name, (lora, batch, checkpointing, padding_free) in LAYOUTS.items():
        model = get_peft_model(copy.deepcopy(base), LoraConfig(task_type="CAUSAL_LM", bias="none", **lora))
        if checkpointing:
            model.gradient_checkpointing_enable({"use_reentrant": False})
            model.enable_input_require_grads()
        model.config.use_cache = False
        collate = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=padding_free)
        models[name] = model.train(), batch, collate
    seconds = {name: [] for name in LAYOUTS}
    print(f"load average before: {os.getloadavg()}, 1 torch thread", flush=True)
    for repeat in range(args.repeats):  # interleaved: every layout once per repeat, on the same 8 rows
        features = [{"input_ids": x} for x in ids[8 * repeat:8 * repeat + 8]]
        for name, (model, batch, collate) in models.items():
            started = time.process_time()
            for start in range(0, 8, batch):
                model(**collate(features[start:start + batch])).loss.backward()
            model.zero_grad(set_to_none=True)
            seconds[name].append(time.process_time() - started)
    print(f"load average after: {os.getloadavg()}\n")
    reference = statistics.median(seconds["docs (TRL's PEFT guide)"])
    print(f"{'layout':<34} {'CPU s / 8 rows':>14} {'vs docs':>8}   each repeat")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:<34} {median:>14.2f} {median / reference:>7.2f}x   {' '.join(f'{v:.2f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
