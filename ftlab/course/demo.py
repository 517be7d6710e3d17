"""``ftlab demo``: one complete round, start to finish, on whatever machine this is, recorded in the lab.

On a CPU, or without the Hub, it fine-tunes ftlab's tiny model (seconds on 2 cores: ftlab ships it pre-trained); on a
GPU with the Hub, TinyLlama-1.1B-Chat. The task is new to both models: greet someone politely in a
fixed style. It prints a few lines: the answers before, one progress line per evaluation, the answers
after, and the round's summary. The round goes into the lab book (``ftlab.Lab.default()``, or
``lab=``), so ``ftlab runs`` shows it next.
"""

from __future__ import annotations

import contextlib
import io
import sys

from ftlab.config import RoundConfig
from ftlab.console.quiet import quiet_libraries
from ftlab.data import course_set
from ftlab.env import setup
from ftlab.evaluation.generation import answers
from ftlab.lab.book import Lab
from ftlab.models.loading import load_model
from ftlab.round.progress import LossLines


def demo_data(seed: int = 0):
    """Train and eval rows for the demo task (``ftlab.data.course_set("demo")``): eval names never occur in train."""
    return course_set("demo", seed=seed)


def run_demo(lab=None, max_steps: int | None = None):
    """Fine-tune, print before/after and the summary; returns the lab's ``Round`` (``.result`` holds the model).

    ``lab``: a ``ftlab.Lab`` or a folder (default ``ftlab.Lab.default()``).
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be at least 1 (got {max_steps})")
    env = setup()
    lab = lab if isinstance(lab, Lab) else Lab(lab) if lab is not None else Lab.default()
    with quiet_libraries(transformers_bars=True, transformers_logs=True):
        model, tokenizer = load_model(env.default_model)
    train, evaluation = demo_data()
    steps = max_steps or (120 if env.uses_tiny_model else 60)
    config = RoundConfig.preset(env.default_preset, max_steps=steps, eval_steps=-(-steps // 6))
    prompts = [row["messages"][0]["content"] for row in evaluation[:3]]
    before = answers(model, tokenizer, prompts, max_new_tokens=24, progress=False)
    print(f"Task: greet politely in a fixed style. {len(train)} training rows, preset {env.default_preset!r}, "
          f"{steps} steps.\nTraining (the loss on the {len(evaluation)} held-out rows should fall):")
    progress = LossLines(sys.stdout)
    quiet = quiet_libraries(transformers_bars=True, transformers_logs=True)
    with quiet, contextlib.redirect_stdout(io.StringIO()):  # the lab keeps these lines in its folder
        round_ = lab.train(config, model, tokenizer, train, evaluation, name="demo", callbacks=[progress])
    if round_.status != "succeeded":
        print(round_.verdict())
        return round_
    after = answers(round_.result.model, tokenizer, prompts, max_new_tokens=24, progress=False)
    print("The model's answers, before -> after fine-tuning:")
    for prompt, old, new in zip(prompts, before, after, strict=True):
        print(f"  {prompt:<26} {old!r:.40} -> {new!r}")
    metrics = round_.metrics
    print(f"Eval loss {metrics['eval_loss_before']:.3f} -> {metrics['eval_loss']:.3f} "
          f"(perplexity {metrics['perplexity']:.1f}) in {metrics['wall_time_s']:.1f} s, "
          f"{metrics['trainable_params']:,} of {metrics['total_params']:,} parameters trained.")
    print(f"Recorded as round {round_.id} in {lab.path} (the adapter is in {round_.adapter_dir}): "
          f"`ftlab runs{'' if _is_default(lab) else f' {lab.path}'}` shows it.")
    return round_


def _is_default(lab) -> bool:
    with contextlib.redirect_stdout(io.StringIO()):
        return Lab.default().path.resolve() == lab.path.resolve()
