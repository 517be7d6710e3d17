"""One fine-tuning round through TRL's SFTTrainer, with the guard rails a T4 needs.

``train_round`` is the course's main entry point; read it with ``??ftlab.train_round``. It seeds every
random generator first (LoRA's initial weights come from the seed too), checks the knobs and the data
before anything heavy happens, puts LoRA adapters on a new model over the same base weights (the
model it was given is left as it was, and no second copy of the base is made), hands it to
TRL's ``SFTTrainer`` with an ``SFTConfig`` whose precision is explicit, keeps the LoRA weights in
fp32 (TRL casts them to bf16 on quantized models, which crashes fp16 training on a T4), trains (a tracker,
if ``report_to`` names one, writing into the round's folder), saves the adapter and the tokenizer, and
returns a ``RoundResult``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftlab.config import RoundConfig, lora_scale_hint, small_model_hint
from ftlab.console.lines import warn
from ftlab.console.quiet import known_lines_off, quiet_known_noise, quiet_libraries
from ftlab.data import load
from ftlab.distributed import is_main
from ftlab.machine import choose_precision, gpu_decides, gpu_info, has_gpu, use_cpu_threads
from ftlab.memory.suggestions import warn_if_it_does_not_fit
from ftlab.models.quantized import is_4bit, keep_4bit_trainable
from ftlab.round.rehearsal import rehearsal_line, rehearsal_record, rehearse_mixed_precision
from ftlab.round.shared_base import over_same_weights, share_recast_weights
from ftlab.round.trackers import how_to_look, tracker_env
from ftlab.round.useful_tokens import RoundMeter, score_loss_positions_only
from ftlab.round.what_runs import note, what_runs
from ftlab.templates.masks import TemplateError
from ftlab.templates.template import Template

MEASURED = {"tokens_per_s": "token positions / s", "peak_allocated_gib": "peak GPU GiB allocated",
            "peak_reserved_gib": "peak GPU GiB reserved", "planned_peak_gib": "peak GPU GiB planned",
            "model_tflops": "model TFLOPS", "mfu_sustained": "MFU of sustained rate", "mfu_peak": "MFU of peak rate"}


@dataclass
class RoundResult:
    """What one round produced: losses, perplexity, wall time, trainable share and where it was saved."""

    config: RoundConfig
    precision: str
    log_history: list[dict]
    train_loss: float | None
    eval_loss: float | None
    eval_loss_before: float | None
    wall_time_s: float
    trainable_params: int
    total_params: int
    output_dir: str
    adapter_dir: str
    model: object = field(default=None, repr=False)  # the model with its trained LoRA adapters
    optimizer: str = ""  # the optimiser that ran (config.optim, unless this machine cannot run it)
    substitutions: list[dict] = field(default_factory=list)  # knob, asked, used, why: what ran differently
    quantization: str | None = None  # how the base's weights were held as it trained: '4bit', '8bit' or None
    useful_token_ratio: float | None = None  # eta: non-pad tokens / positions processed in training batches
    measured: dict = field(default_factory=dict)  # tokens/s; on a GPU peak memory beside the plan's prediction
    rehearsal: dict | None = None  # rehearsed on the CPU as a T4 (FTLAB_REHEARSE): which GPU, what it cannot show
    tracker_files: str | None = None  # where report_to's tracker wrote, inside output_dir (ftlab.round.trackers)

    @property
    def perplexity(self) -> float | None:
        """exp of the trainer's eval loss, a mean of batch means: ``ftlab.evaluation.perplexity`` weighs each
        answer token alike, and the two differ when eval batches hold different numbers of answer tokens."""
        return math.exp(self.eval_loss) if self.eval_loss is not None else None

    @property
    def trainable_share(self) -> float:
        return self.trainable_params / self.total_params

    def curve(self, key: str = "loss") -> tuple[list[int], list[float]]:
        """Steps and values of one logged quantity (``"loss"``, ``"eval_loss"``, ``"learning_rate"``, ...)."""
        points = [(h["step"], h[key]) for h in self.log_history if key in h]
        return [s for s, _ in points], [v for _, v in points]

    def summary(self) -> dict:
        """The round in a few numbers (printed, and returned as a dict)."""
        ppl = self.perplexity
        facts = {
            "train loss (last logged)": self.train_loss,
            "eval loss before": self.eval_loss_before,
            "eval loss after": self.eval_loss,
            "perplexity after": ppl,
            "wall time (s)": round(self.wall_time_s, 1),
            "trainable params": f"{self.trainable_params:,} of {self.total_params:,} ({self.trainable_share:.2%})",
            "precision": self.precision,
            "useful tokens (eta)": self.useful_token_ratio,
            **{MEASURED.get(k, k): v for k, v in self.measured.items() if k in MEASURED},
            "adapter saved in": self.adapter_dir,
            **({f"{self.config.report_to} files": self.tracker_files} if self.tracker_files else {}),
        }
        if self.rehearsal:
            facts["rehearsal"] = rehearsal_line(self.rehearsal)
        for name, value in facts.items():
            # losses to 4 decimals; seconds, rates and GiB as they were measured
            shown = f"{value:.4f}" if isinstance(value, float) and abs(value) < 100 else value
            shown = f"{value:,.1f}" if name in ("wall time (s)", "token positions / s") else shown
            print(f"{name:<26} {shown}")
        return facts

    def plot(self, ax=None):
        """Training and eval loss against the optimiser step."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        ax.plot(*self.curve("loss"), label="train loss")
        steps, losses = self.curve("eval_loss")
        if self.eval_loss_before is not None:  # the untrained model's eval loss, at step 0
            steps, losses = [0, *steps], [self.eval_loss_before, *losses]
        if steps:
            ax.plot(steps, losses, "o-", label="eval loss")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss")
        ax.set_title(f"lr {self.config.learning_rate:g}, r {self.config.lora_r}, {self.precision}")
        ax.legend()
        ax.grid(alpha=0.3)
        return ax


def train_round(config: RoundConfig, model, tokenizer, train, eval=None, output_dir: str | None = None,
                template: Template | None = None, callbacks: list | None = None,
                resume_from_checkpoint: str | bool | None = None) -> RoundResult:
    """Fine-tune ``model`` with LoRA on ``train`` for one round, evaluating on ``eval``.

    ``train`` and ``eval`` may be anything ``ftlab.data.load`` reads; ``template`` (default: the chat
    template, ``ftlab.Template.chat(tokenizer)``) decides what the model sees and where the loss falls.
    ``resume_from_checkpoint`` (a checkpoint folder, or True for the latest in ``output_dir``) continues
    an interrupted round; checkpoints are written every ``config.save_steps`` steps.
    ``model`` is left as it was, its ``requires_grad`` flags included: the result's ``.model`` is a new
    model over the same base weights (no copy) with the trained adapters, so running the cell again trains
    a fresh adapter on the same base. (A 4-bit or 8-bit base shares QLoRA's fp32 casts of its norms, embeddings and output layer: see ``add_lora``.)
    """
    from transformers import set_seed

    set_seed(config.seed)  # python, numpy and torch, before anything random is built: same seed, same round
    template = template or Template.chat(tokenizer)
    train_set, eval_set, ran = prepare_round(config, model, template, train, eval)
    output_dir = output_dir or f"ftlab-runs/{time.strftime('%Y%m%d-%H%M%S')}"
    with tracker_env(config.report_to, output_dir) as tracker:  # its files inside the round's folder, no login prompt
        if tracker is not None and is_main():
            print(f"{config.report_to} writes into {tracker}: {how_to_look(config.report_to, tracker)}")
        trainer = build_trainer(config, add_lora(model, config), tokenizer, train_set, eval_set, ran, output_dir,
                                callbacks)
        meter = RoundMeter(trainer, config, model)  # eta, tokens/s, peak GPU memory beside the plan
        with score_loss_positions_only(), known_lines_off():  # the output layer only where loss falls; no log noise
            before = trainer.evaluate()["eval_loss"] if eval_set is not None else None
            meter.start()
            trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return finish_round(trainer, tokenizer, config, ran, output_dir, before, meter, tracker)


# ------------------------------------------------------------------------------------------ the steps
def prepare_round(config: RoundConfig, model, template: Template, train, eval):
    """Check knobs, model and data before anything is trained; say what runs here (``WhatRuns``: precision,
    optimiser, quantization, substitutions); apply the template."""
    quiet_known_noise()
    use_cpu_threads(model)  # a small model on the CPU: one thread, fast on a busy machine
    config.validate()
    config.check_model(model)
    ran = check_machine(config, model)
    with quiet_libraries():  # the template's pass over the rows: no bar for a blink
        train_set = load(train, file="train", quiet=True)
        eval_set = load(eval, file="eval", quiet=True) if eval is not None else None
        train_rows = training_rows(template, train_set, config)
        template.check_loss(train_rows, config.max_length, "train")  # reads the masks just made: one encoding per row
        return train_rows, training_rows(template, eval_set, config, "eval") if eval_set else None, ran


def check_machine(config: RoundConfig, model):
    """What runs on this GPU (or CPU) (``ftlab.round.what_runs``), a note for every knob that will not run as
    written, and hints about the learning rate."""
    for hint in (small_model_hint(config, model), lora_scale_hint(config)):
        if hint:
            print(hint)
    name, _, capability, memory = gpu_info()
    ran = what_runs(config, model, choose_precision(capability), name, gpu_decides())
    if name is not None:  # on a GPU: will it fit? (ftlab.plan, before anything is loaded onto it)
        warn_if_it_does_not_fit(config, model, name, memory)
    if config.loss_on == "everything":
        print("Note: loss_on='everything': the prompts carry loss too, so the model also learns to write prompts.")
    for change in ran.substitutions:
        print(note(change))
    return ran


def training_rows(template: Template, rows, config: RoundConfig, name: str = "train"):
    """Rows as TRL receives them: tokenized with ftlab's loss mask and cut to max_length (TRL does not cut
    padding-free rows; for the others its own cut then changes nothing). A refusal names the split."""
    try:
        formatted = template.format(rows, config.loss_on, config.max_length)
    except TemplateError as error:
        raise TemplateError(f"{name} data, {error}") from error
    report_cut_rows(template, rows, formatted, config.max_length, name)
    return formatted


def report_cut_rows(template: Template, rows, formatted, max_length: int, name: str) -> list[int]:
    """Warn, in one line, about the rows longer than ``max_length`` tokens that the trainer cuts; their numbers.

    Only rows that reach ``max_length`` once cut are measured again (whole), so the check costs nothing when
    no row is that long; the warning gives how many, which rows, the longest, and what to do.
    """
    import pyarrow.compute as pc

    reached = pc.list_value_length(formatted.data.column("input_ids")).to_numpy() >= max_length
    candidates = [int(i) for i in reached.nonzero()[0]]
    if not candidates:
        return []
    lengths = template.token_lengths(rows.select(candidates)["messages"])
    cut = [(i + 1, n) for i, n in zip(candidates, lengths, strict=True) if n > max_length]
    if cut:
        shown = ", ".join(str(row) for row, _ in cut[:5]) + (" ..." if len(cut) > 5 else "")
        warn(f"{len(cut):,} of {len(rows):,} {name} rows are longer than max_length={max_length} tokens and are cut "
             f"to it (rows {shown}; the longest has {max(n for _, n in cut):,} tokens): the model never sees their "
             "ends, and a cut answer teaches it to stop mid-sentence. Raise max_length, or shorten or drop those "
             "rows (ftlab.templates.length_report(rows, tokenizer, max_length) shows every row's length).", stacklevel=4)
    return [row for row, _ in cut]


def build_trainer(config: RoundConfig, tuned, tokenizer, train_set, eval_set, ran, output_dir: str,
                  callbacks: list | None):
    """TRL's SFTTrainer for the LoRA model with what runs here (``ran``: precision, optimiser), fp32 trainables
    (and ftlab's quiet progress in a notebook)."""
    from trl import SFTTrainer

    from ftlab.round.progress import take_over

    # the rows arrive tokenized with ftlab's loss mask (Template.format), which TRL applies as it is
    with quiet_libraries():  # TRL's passes over the rows: a bar each, over in a blink
        trainer = SFTTrainer(model=tuned, args=config.sft_config(output_dir, ran.precision, eval_set is not None,
                                                                 conversational=False, on_gpu=has_gpu(),
                                                                 optim=ran.optimizer),
                             train_dataset=train_set, eval_dataset=eval_set, processing_class=tokenizer,
                             callbacks=callbacks)
    take_over(trainer, callbacks)
    keep_trainables_fp32(trainer.model)
    rehearse_mixed_precision(trainer)  # a rehearsed T4: fp16 autocast and the gradient scaler, run by the CPU
    return trainer


def add_lora(model, config: RoundConfig):
    """LoRA adapters on a new model over ``model``'s weights (``model`` keeps its layers and its
    ``requires_grad`` flags); prints how much trains.

    What the caller's model does share: for a 4-bit or 8-bit base ``prepare_model_for_kbit_training``
    turns every fp16 or bf16 weight it did not quantize (norms, embeddings, output layer) to fp32, as QLoRA
    needs, and ``model`` is pointed at those fp32 tensors too rather than keep a second, fp16 copy of them.
    """
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    keep_base_trainable(model)
    tuned = over_same_weights(model)
    if isinstance(tuned, PeftModel):
        print("The model already has LoRA adapters: training on from them (the earlier round's adapter is kept "
              "as it was; load a fresh model for a fresh round).")
    else:
        if getattr(tuned, "is_loaded_in_4bit", False) or getattr(tuned, "is_loaded_in_8bit", False):
            tuned = prepare_model_for_kbit_training(
                tuned, use_gradient_checkpointing=config.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False})
            share_recast_weights(model, tuned)
        tuned = get_peft_model(tuned, config.lora_config())
    trainable, total = tuned.get_nb_trainable_parameters()
    print(f"Trainable parameters: {trainable:,} of {total:,} ({trainable / total:.2%}) "
          f"- LoRA r={config.lora_r} on {', '.join(config.target_modules)}")
    return tuned


def keep_base_trainable(model) -> None:
    """A 4-bit base repacked for CPU inference (after an eval or a generation) gives wrong LoRA gradients."""
    if is_4bit(model) and keep_4bit_trainable(model):
        print("Note: the 4-bit weights had been repacked for CPU inference by an earlier evaluation or "
              "generation; ftlab restored the trainable layout (see ftlab.models.quantized.keep_4bit_trainable).")


def keep_trainables_fp32(model) -> int:
    """Cast every trainable parameter to fp32; returns how many were recast.

    fp16 mixed precision unscales gradients in fp32 and refuses fp16 or bf16 trainables
    ("Attempting to unscale FP16 gradients"; on a T4 bf16 ones crash at the first clip, trl#4901).
    """
    import torch

    recast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            recast += 1
    return recast


def finish_round(trainer, tokenizer, config, ran, output_dir, eval_loss_before, meter, tracker=None) -> RoundResult:
    """Save adapter, tokenizer and logs; gather the numbers (and what ran differently) into a RoundResult."""
    measured = meter.read()
    wall_time_s = measured.pop("wall_time_s")
    adapter_dir = Path(output_dir) / "adapter"
    trainer.save_model(str(adapter_dir))  # from the main process only, when several train (DDP)
    history = trainer.state.log_history
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(adapter_dir))
        (Path(output_dir) / "log_history.json").write_text(json.dumps(history, indent=1))
    train_losses = [h["loss"] for h in history if "loss" in h]
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    trainable, total = trainer.model.get_nb_trainable_parameters()
    return RoundResult(config=config, precision=ran.precision, log_history=history,
                       train_loss=train_losses[-1] if train_losses else None,
                       eval_loss=eval_losses[-1] if eval_losses else None, eval_loss_before=eval_loss_before,
                       wall_time_s=wall_time_s, trainable_params=trainable, total_params=total,
                       output_dir=str(output_dir), adapter_dir=str(adapter_dir), model=trainer.model,
                       optimizer=ran.optimizer, substitutions=ran.substitutions, quantization=ran.quantization,
                       useful_token_ratio=measured["useful_token_ratio"], measured=measured,
                       rehearsal=rehearsal_record(), tracker_files=str(tracker) if tracker else None)
