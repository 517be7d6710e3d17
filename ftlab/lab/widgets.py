"""Widgets over a lab book: a panel to set the knobs and train rounds, and a view to compare them.

Core ipywidgets and matplotlib only, so the same code runs on Colab (ipywidgets 7) and Kaggle (8):
no third-party widgets, no ipympl. A kernel busy in a cell handles no widget events, so the panel
trains in a thread: the cell returns at once, and the Stop button's click arrives while the round runs.

    panel = ftlab.lab.widgets.Panel(lab, model, tokenizer, train, eval)   # display(panel) shows it
    ftlab.lab.widgets.Compare(lab, model, tokenizer)                      # rounds side by side

The panel keeps the base model it was given in memory: every round trains a fresh adapter over the
same base weights (``ftlab.train_round`` never changes them), so a T4 never reloads TinyLlama. It reads
the rows once, as one ``RoundInputs`` (``ftlab.lab.materials``), which every round it trains carries.
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as w

from ftlab.config import ALL_LINEAR, ATTENTION, PRESETS, ConfigError, RoundConfig
from ftlab.lab.answers_and_curves import answers, answers_html, plot_curves
from ftlab.lab.directions import direction
from ftlab.lab.materials import given_inputs
from ftlab.lab.table import metric_column, spreads

REDRAW_S = 3.0  # the live curve is redrawn at most this often
TARGETS = {"attention": ATTENTION, "all linear": ALL_LINEAR}
WIDE = {"description_width": "initial"}


class Stopped(KeyboardInterrupt):
    """Raised inside the training thread once Stop was clicked and a checkpoint saved: the lab records
    the round as interrupted (resumable with ``lab.resume``), as it does for Ctrl-C."""


def _live_callback(panel):
    from transformers import TrainerCallback

    class Live(TrainerCallback):
        replaces_progress = True  # the panel draws its own bar and curve: no trainer bars beside them

        def on_train_begin(self, args, state, control, **kwargs):
            panel.progress.max = max(state.max_steps, 1)

        def on_step_end(self, args, state, control, **kwargs):
            panel.progress.value = state.global_step
            if panel._stop.is_set():
                control.should_save = True  # a checkpoint first, then stop in on_save: resumable

        def on_save(self, args, state, control, **kwargs):
            if panel._stop.is_set():
                raise Stopped(f"stopped from the panel at step {state.global_step}")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                panel.curve.append((state.global_step, logs["loss"]))
                panel._redraw()

    return Live()


class Panel(w.VBox):
    """Knobs, the ``RoundConfig`` code they make, Train / Stop, progress and a live loss curve."""

    def __init__(self, lab, model, tokenizer=None, train=None, eval=None, preset: str = "cpu-tiny", template=None,
                 base_model: str | None = None, **train_options):
        # one RoundInputs (or the one given in the model's place): the rows read once for every round trained here
        self.lab, self.inputs = lab, given_inputs(model, tokenizer, train, eval, template, base_model)
        self.train_options = train_options
        self.thread: threading.Thread | None = None
        self.last_round = None
        self.curve: list[tuple[int, float]] = []
        self._stop, self._drawn_at = threading.Event(), 0.0
        self.preset = w.Dropdown(options=list(PRESETS), value=preset, description="preset")
        self.learning_rate = w.FloatLogSlider(base=10, min=-6, max=-1, step=0.1, description="learning rate",
                                              readout_format=".1e", style=WIDE)
        self.max_steps = w.BoundedIntText(min=-1, max=100_000, description="max steps (-1: epochs)", style=WIDE)
        self.epochs = w.BoundedFloatText(min=0.1, max=50, step=0.5, description="epochs")
        self.batch_size = w.BoundedIntText(min=1, max=512, description="micro-batch")
        self.accumulation = w.BoundedIntText(min=1, max=512, description="accumulation", style=WIDE)
        self.lora_r = w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64, 128], description="LoRA rank")
        self.lora_alpha = w.BoundedIntText(min=1, max=1024, description="LoRA alpha")
        self.lora_dropout = w.FloatSlider(min=0.0, max=0.5, step=0.01, description="LoRA dropout", style=WIDE)
        self.targets = w.Dropdown(options=list(TARGETS), description="targets")
        self.max_length = w.BoundedIntText(min=16, max=32_768, description="max length")
        self.seed = w.BoundedIntText(min=0, max=2**31 - 1, description="seed")
        self.code = w.HTML()
        self.message = w.HTML()
        self.progress = w.IntProgress(min=0, max=1, value=0, description="step")
        self.train_button = w.Button(description="Train", button_style="success")
        self.stop_button = w.Button(description="Stop", button_style="danger")
        self.plot = w.Output()
        self._knobs = [self.learning_rate, self.max_steps, self.epochs, self.batch_size, self.accumulation,
                       self.lora_r, self.lora_alpha, self.lora_dropout, self.targets, self.max_length, self.seed]
        self.load_preset()
        self.preset.observe(lambda change: self.load_preset(), names="value")
        for knob in self._knobs:
            knob.observe(lambda change: self.show_code(), names="value")
        self.train_button.on_click(lambda button: self.start())
        self.stop_button.on_click(lambda button: self.stop())
        super().__init__([self.preset, w.HBox([w.VBox(self._knobs[:6]), w.VBox(self._knobs[6:])]), self.code,
                          w.HBox([self.train_button, self.stop_button, self.progress]), self.message, self.plot])

    model = property(lambda self: self.inputs.model)  # the base model every round trains a fresh adapter over
    tokenizer = property(lambda self: self.inputs.tokenizer)

    # ------------------------------------------------------------------------------------ knobs
    def load_preset(self) -> None:
        knobs = RoundConfig.preset(self.preset.value)
        self.learning_rate.value = knobs.learning_rate
        self.max_steps.value, self.epochs.value = knobs.max_steps, knobs.num_train_epochs
        self.batch_size.value, self.accumulation.value = knobs.batch_size, knobs.gradient_accumulation_steps
        self.lora_r.value, self.lora_alpha.value, self.lora_dropout.value = knobs.lora_r, knobs.lora_alpha, \
            knobs.lora_dropout
        self.targets.value = next((k for k, v in TARGETS.items() if tuple(v) == tuple(knobs.target_modules)),
                                  "attention")
        self.max_length.value, self.seed.value = knobs.max_length, knobs.seed
        self.show_code()

    def knobs(self) -> dict:
        """The knobs the panel sets (the preset supplies the rest)."""
        return dict(learning_rate=float(f"{self.learning_rate.value:.3g}"), max_steps=self.max_steps.value,
                    num_train_epochs=self.epochs.value, batch_size=self.batch_size.value,
                    gradient_accumulation_steps=self.accumulation.value, lora_r=self.lora_r.value,
                    lora_alpha=self.lora_alpha.value, lora_dropout=round(self.lora_dropout.value, 3),
                    target_modules=TARGETS[self.targets.value], max_length=self.max_length.value,
                    seed=self.seed.value)

    def config(self) -> RoundConfig:
        """The RoundConfig of the knobs as set (raises ConfigError, which the panel shows, for a bad mix)."""
        return RoundConfig.preset(self.preset.value, **self.knobs())

    def code_text(self) -> str:
        preset = RoundConfig.preset(self.preset.value)
        changed = {k: v for k, v in self.knobs().items() if getattr(preset, k) != v}
        args = "".join(f", {k}={v!r}" for k, v in changed.items())
        return f"config = ftlab.RoundConfig.preset({self.preset.value!r}{args})"

    def show_code(self) -> None:
        self.code.value = f"<pre>{html.escape(self.code_text())}</pre>"

    def say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "inherit"
        self.message.value = f"<pre style='color:{color}; white-space:pre-wrap'>{html.escape(text)}</pre>"

    # ------------------------------------------------------------------------------------ training
    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        """What Train does: check the knobs, then train one round through the lab in a thread."""
        if self.running:
            self.say("A round is already running: wait for it to end, or press Stop.")
            return
        try:
            config = self.config()
        except ConfigError as error:
            self.say(f"These knobs do not make a valid round:\n{error}", error=True)
            return
        self._stop.clear()
        self.curve, self.progress.value, self._drawn_at = [], 0, 0.0
        self.say(f"Training: {self.code_text()}")
        self.thread = threading.Thread(target=self._train, args=(config,), daemon=True)
        self.thread.start()

    def _train(self, config) -> None:
        options = {**self.train_options}
        options["callbacks"] = [*(options.get("callbacks") or []), _live_callback(self)]
        try:
            self.last_round = self.lab.train(config, self.inputs, **options)
        except KeyboardInterrupt:  # Stop (or Ctrl-C): the lab has recorded the round as interrupted
            self.last_round = self.lab.rounds()[-1]
        except Exception as error:  # noqa: BLE001 - shown in the panel, never a traceback in a thread
            self.say(f"The round could not start: {type(error).__name__}: {error}", error=True)
            return
        self._redraw(force=True)
        round_ = self.last_round
        how = {"interrupted": f"\nStopped. Continue it with lab.resume({round_.id}, model, tokenizer)."}
        self.say(round_.verdict() + how.get(round_.status, ""),
                 error=round_.status in ("failed", "diverged", "collapsed"))

    def stop(self) -> None:
        """What Stop does: save a checkpoint at the end of this step, then end the round as interrupted."""
        if not self.running:
            self.say("No round is running.")
            return
        self._stop.set()
        self.say("Stopping after this step (a checkpoint is saved so the round can be resumed)...")

    def wait(self, timeout: float | None = None) -> None:
        """Block until the round under way ends (for scripts and tests; a notebook need not wait)."""
        if self.thread is not None:
            self.thread.join(timeout)

    def _redraw(self, force: bool = False) -> None:
        if not self.curve or (not force and time.monotonic() - self._drawn_at < REDRAW_S):
            return
        import matplotlib.pyplot as plt

        self._drawn_at = time.monotonic()
        fig, ax = plt.subplots(figsize=(5, 2.8))
        ax.plot(*zip(*self.curve, strict=True), "o-")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3)
        self.plot.outputs = ()
        self.plot.append_display_data(fig)
        plt.close(fig)


class Compare(w.VBox):
    """Choose rounds: the knobs that differ, the loss curves overlaid (by tokens seen when the batch sizes
    differ), metric bars with the repeat spread, status and advice. Given the base model and tokenizer,
    also one prompt answered by the base and by each chosen round (``ftlab.lab.answers_and_curves.answers``).
    ``metric``: the eval loss, or a score by its name (``"exact_match"``); the bars say which way is better
    (``ftlab.lab.directions``; a metric ftlab does not know needs ``higher_is_better``)."""

    def __init__(self, lab, model=None, tokenizer=None, metric: str = "eval loss",
                 higher_is_better: bool | None = None):
        if model is not None and tokenizer is None:
            raise ValueError("pass the tokenizer with the model: Compare(lab, model, tokenizer)")
        self.direction = direction(metric, higher_is_better)  # refused here, by name, when unknown
        self.lab, self.model, self.tokenizer, self.metric = lab, model, tokenizer, metric
        rounds = lab.rounds()
        self.choose = w.SelectMultiple(options=[(self._label(r), r.id) for r in rounds],
                                       value=tuple(r.id for r in rounds[-4:]), description="rounds", rows=6)
        self.axis = w.ToggleButtons(options=[("auto", "auto"), ("by step", "step"), ("by tokens seen", "tokens")],
                                    value="auto", description="curves")
        self.table, self.plot, self.notes = w.Output(), w.Output(), w.HTML()
        self.choose.observe(lambda change: self.show(), names="value")
        self.axis.observe(lambda change: self.show(), names="value")
        children = [self.choose, self.axis, self.notes, self.table, self.plot]
        if model is not None:
            self.prompt = w.Textarea(placeholder="One prompt for the base model and the chosen rounds",
                                     layout=w.Layout(width="60%"))
            self.ask_button = w.Button(description="Ask them all", button_style="info")
            self.answers = w.HTML()
            self.ask_button.on_click(lambda button: self.ask())
            children += [w.HBox([self.prompt, self.ask_button]), self.answers]
        super().__init__(children)
        self.show()

    @staticmethod
    def _label(round_) -> str:
        return f"{round_.id}{': ' + round_.name if round_.name else ''} ({round_.status})"

    def show(self) -> None:
        if not self.lab.rounds():
            self.notes.value = ("<p>This lab has no rounds yet. Train the first one with the panel "
                                "(<code>ftlab.lab.widgets.Panel(lab, model, tokenizer, train, eval)</code>, then Train) "
                                "or with <code>lab.train(config, model, tokenizer, train, eval)</code>.</p>")
            return
        ids = list(self.choose.value)
        if not ids:
            self.notes.value = "<p>Choose one or more rounds above.</p>"
            return
        rounds = [self.lab.round(i) for i in ids]
        advice = [f"<li>round {r.id} is {r.status}: {html.escape(r.verdict())}</li>"
                  for r in rounds if r.status != "succeeded"]
        self.notes.value = f"<ul>{''.join(advice)}</ul>" if advice else ""
        import pandas as pd

        table = self.lab.table(baseline=ids[0]).loc[ids]
        self.table.outputs = ()
        with pd.option_context("display.max_columns", None):  # pandas hides the middle of 20+ columns: the knobs
            self.table.append_display_data(table)
        self.plot.outputs = ()
        self.plot.append_display_data(self.figure(rounds, table))

    def ask(self, prompt: str | None = None) -> dict:
        """What "Ask them all" does: the prompt answered by the base model and each chosen round, side by side."""
        prompt = self.prompt.value if prompt is None else prompt
        if not prompt.strip():
            self.answers.value = "<p>Write a prompt in the box first.</p>"
            return {}
        self.answers.value = "<p>Answering (the base model, then each round's adapter in turn)...</p>"
        try:
            said = answers(self.lab, list(self.choose.value), self.model, self.tokenizer, prompt)
        except ValueError as error:  # a model the rounds were not trained on: said in the view
            self.answers.value = f"<p style='color:#b00020'>{error}</p>"
            return {}
        self.answers.value = answers_html(prompt, said)
        return said

    def figure(self, rounds, table):
        """Overlaid train-loss curves and the chosen metric per round, with the repeat spread."""
        import matplotlib.pyplot as plt

        fig, (curves, bars) = plt.subplots(1, 2, figsize=(10, 3.2))
        plot_curves(rounds, curves, by=None if self.axis.value == "auto" else self.axis.value)
        column = metric_column(table, self.metric)
        if column is not None:
            values = table[column].astype(float)
            errors = None
            if f"{column} over repeats" in table.columns:  # the unrounded sd of each round's repeats
                errors = [s.sd if s is not None else 0 for s in spreads(table, column)]
            bars.bar([str(i) for i in table.index], values.fillna(0), yerr=errors, color="C1")
            bars.set_xlabel("round")
            bars.set_title(f"{column} ({self.direction.words})" + (" (bars: repeat spread)" if errors else ""))
        plt.close(fig)
        return fig
