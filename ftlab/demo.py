"""``ftlab demo``: one complete round, start to finish, on whatever machine this is.

On a CPU, or without the Hub, it fine-tunes ftlab's tiny model (under a minute on 2 cores); on a GPU
with the Hub, TinyLlama-1.1B-Chat. The task is new to both models: greet someone politely in a fixed
style. It prints the answers before and after, the eval loss before and after, and where the adapter
went, so a newcomer sees a whole fine-tune work before opening a notebook.
"""

from __future__ import annotations

import ftlab
from ftlab.data import instructions, split_train_eval


def demo_data(seed: int = 0):
    """Train and eval rows for the demo task; eval names never occur in train."""
    return split_train_eval(instructions(600, "greet_politely", seed=seed), eval_size=12, seed=seed)


def run_demo(output_dir: str = "ftlab-runs/demo", max_steps: int | None = None) -> ftlab.RoundResult:
    env = ftlab.setup()
    model, tokenizer = ftlab.load_model(env.default_model)
    train, evaluation = demo_data()
    preset = "cpu-tiny" if env.uses_tiny_model else "t4-lora"
    config = ftlab.RoundConfig.preset(preset, max_steps=max_steps or (120 if env.uses_tiny_model else 60),
                                      eval_steps=20)
    prompts = [row["messages"][0]["content"] for row in evaluation[:4]]
    before = ftlab.generate.answers(model, tokenizer, prompts, max_new_tokens=24)
    result = ftlab.train_round(config, model, tokenizer, train, evaluation, output_dir=output_dir)
    after = ftlab.generate.answers(result.model, tokenizer, prompts, max_new_tokens=24)
    print("\nThe model's answers, before -> after fine-tuning:")
    for prompt, old, new in zip(prompts, before, after, strict=True):
        print(f"  {prompt:<26} {old!r:<34} -> {new!r}")
    print()
    result.summary()
    return result
