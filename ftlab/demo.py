"""``ftlab demo``: one complete round, start to finish, on whatever machine this is, recorded in the lab.

On a CPU, or without the Hub, it fine-tunes ftlab's tiny model (seconds on 2 cores, once the model is built); on a
GPU with the Hub, TinyLlama-1.1B-Chat. The task is new to both models: greet someone politely in a
fixed style. It prints a few lines: the answers before, one progress line per evaluation, the answers
after, and the round's summary. The round goes into the lab book (``ftlab.Lab.default()``, or
``lab=``), so ``ftlab runs`` shows it next.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time

from transformers import TrainerCallback

import ftlab
from ftlab.data import course_set


def demo_data(seed: int = 0):
    """Train and eval rows for the demo task (``ftlab.data.course_set("demo")``): eval names never occur in train."""
    return course_set("demo", seed=seed)


class Progress(TrainerCallback):
    """One line per evaluation (step, train loss, eval loss, seconds) instead of log dicts and bars.

    ``replaces_progress`` tells ``train_round`` to drop the trainer's own progress bars and printer.
    """

    replaces_progress = True

    def __init__(self, out=None):
        self.out, self.started, self.train_loss = out or sys.stdout, time.perf_counter(), None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.train_loss = logs["loss"]
            if args.eval_strategy == "no":  # no evaluation to report: the train loss at each log
                print(f"  step {state.global_step:>4}/{state.max_steps}: train loss {logs['loss']:.3f} "
                      f"({time.perf_counter() - self.started:.0f} s)", file=self.out, flush=True)
        if "eval_loss" in logs and not state.max_steps:  # the evaluation before training starts
            print(f"  before training: eval loss {logs['eval_loss']:.3f}", file=self.out, flush=True)
        elif "eval_loss" in logs:
            train = f"train loss {self.train_loss:.3f}, " if self.train_loss is not None else ""
            self.train_loss = None  # shown once: a later line without a new one leaves it out
            print(f"  step {state.global_step:>4}/{state.max_steps}: {train}eval loss {logs['eval_loss']:.3f} "
                  f"({time.perf_counter() - self.started:.0f} s)", file=self.out, flush=True)


def run_demo(lab=None, max_steps: int | None = None):
    """Fine-tune, print before/after and the summary; returns the lab's ``Round`` (``.result`` holds the model).

    ``lab``: a ``ftlab.Lab`` or a folder (default ``ftlab.Lab.default()``).
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be at least 1 (got {max_steps})")
    env = ftlab.setup()
    lab = lab if isinstance(lab, ftlab.Lab) else ftlab.Lab(lab) if lab is not None else ftlab.Lab.default()
    with quiet_libraries():
        model, tokenizer = ftlab.load_model(env.default_model)
    train, evaluation = demo_data()
    steps = max_steps or (120 if env.uses_tiny_model else 60)
    config = ftlab.RoundConfig.preset(env.default_preset, max_steps=steps, eval_steps=-(-steps // 6))
    prompts = [row["messages"][0]["content"] for row in evaluation[:3]]
    before = ftlab.generate.answers(model, tokenizer, prompts, max_new_tokens=24, progress=False)
    print(f"Task: greet politely in a fixed style. {len(train)} training rows, preset {env.default_preset!r}, "
          f"{steps} steps.\nTraining (the loss on the {len(evaluation)} held-out rows should fall):")
    progress = Progress(sys.stdout)
    with quiet_libraries(), contextlib.redirect_stdout(io.StringIO()):  # the lab keeps these lines in its folder
        round_ = lab.train(config, model, tokenizer, train, evaluation, name="demo", callbacks=[progress])
    if round_.status != "succeeded":
        print(round_.verdict())
        return round_
    after = ftlab.generate.answers(round_.result.model, tokenizer, prompts, max_new_tokens=24, progress=False)
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


@contextlib.contextmanager
def quiet_libraries():
    """No progress bars from datasets' maps or weight loading, no info-level notes, for this block only."""
    import transformers

    from ftlab import quiet

    log = transformers.logging
    verbosity = log.get_verbosity()
    log.set_verbosity_error()
    try:
        with quiet.quiet_libraries(transformers_bars=True):
            yield
    finally:
        log.set_verbosity(verbosity)


def _is_default(lab) -> bool:
    with contextlib.redirect_stdout(io.StringIO()):
        return ftlab.Lab.default().path.resolve() == lab.path.resolve()
