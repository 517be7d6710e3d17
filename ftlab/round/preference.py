"""A preference round (chapter 08): DPO through TRL's ``DPOTrainer``, on an SFT round's adapter.

``train_preference_round`` checks the pairs (``ftlab.data.load_pairs``: file, row and field, and every prompt
rendered by the model's chat template), refuses an adapter trained on another base model (by name, before
anything loads), puts the SFT adapter on a new model over the same base weights (the caller's model is left as it
was), and trains it on the pairs. The reference is where the adapter started: TRL, given a PEFT model that
already has an adapter and no ``ref_model``, copies that adapter as a frozen "ref" adapter and switches to it for
the reference's forward pass (a new adapter would be referenced with the adapter disabled, the base). Either way
there is no second copy of the base model: the reference costs a forward pass without gradients and one
adapter's weights (``ftlab.plan(..., preference=True)`` counts both). It returns a ``RoundResult`` whose losses
are DPO losses (log 2 = 0.693 at the start) and whose ``config`` is the SFT round's knobs with this round's
training knobs, as the lab records it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ftlab.config import PreferenceConfig, RoundConfig
from ftlab.console.quiet import known_lines_off, quiet_known_noise, quiet_libraries
from ftlab.data.preference_pairs import load_pairs
from ftlab.machine import choose_precision, gpu_decides, gpu_info, has_gpu, use_cpu_threads
from ftlab.models import tiny
from ftlab.round.shared_base import over_same_weights
from ftlab.round.train import RoundResult, keep_trainables_fp32
from ftlab.round.what_runs import note, what_runs


class AdapterMismatchError(ValueError):
    """The adapter was trained on another base model than the one given: its weights would be added to the wrong ones."""


def model_name(path: str) -> str:
    """A base model's name as ftlab compares them: "tiny" for ftlab's tiny model (its path differs between
    machines), else the Hub id or folder the model was loaded from."""
    return "tiny" if path and Path(path).name == tiny.cache_dir().name else str(path or "")


def adapter_base(adapter) -> str:
    """The base model an adapter folder was trained on, as its ``adapter_config.json`` names it."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{adapter} holds no adapter_config.json: give an SFT round's adapter folder "
                                "(lab.round(id).adapter_dir, or RoundResult.adapter_dir)")
    return model_name(json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") or "")


def check_adapter_base(adapter, model) -> str:
    """The base's name when ``adapter`` was trained on ``model``; ``AdapterMismatchError`` naming both otherwise."""
    trained_on, given = adapter_base(adapter), model_name(getattr(model, "name_or_path", ""))
    if trained_on and given and trained_on != given:
        raise AdapterMismatchError(
            f"the adapter in {adapter} was trained on {trained_on!r}, and the model given is {given!r}: its LoRA "
            f"update belongs to {trained_on!r}'s weights. Load that model (ftlab.load_model({trained_on!r})) for the "
            "preference round, or train an SFT round on this one first.")
    return given


def parent_knobs(adapter) -> RoundConfig:
    """The LoRA knobs of an adapter folder, as a RoundConfig (when the SFT round's own config is not given)."""
    saved = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    targets = saved.get("target_modules") or ()
    return RoundConfig(lora_r=saved.get("r", 16), lora_alpha=saved.get("lora_alpha", 32),
                       lora_dropout=saved.get("lora_dropout", 0.0),
                       target_modules=tuple(sorted(targets)) if not isinstance(targets, str) else (targets,))


def chat_renderer(tokenizer):
    """The check a pair's prompt must pass: the tokenizer's chat template renders it, ready for an answer."""
    def render(turns):
        return tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)

    return render


def train_preference_round(config: PreferenceConfig, model, tokenizer, adapter, train, eval=None,
                           output_dir: str | None = None, callbacks: list | None = None,
                           parent: RoundConfig | None = None) -> RoundResult:
    """Train the SFT adapter in ``adapter`` (a folder) on preference pairs ``train`` with DPO; evaluate on ``eval``.

    ``train`` and ``eval``: anything ``ftlab.data.load_pairs`` reads. ``parent``: the SFT round's knobs (read from
    the adapter's files when not given). ``model`` is left as it was: the result's ``.model`` is a new model over
    the same base weights, with the trained adapter ("default") and the frozen reference ("ref").
    """
    from datasets import Dataset
    from peft import PeftModel
    from transformers import set_seed
    from trl import DPOTrainer

    from ftlab.round.progress import take_over

    set_seed(config.seed)
    quiet_known_noise()
    config.validate()
    check_adapter_base(adapter, model)
    render = chat_renderer(tokenizer)
    train_pairs = load_pairs(train, file="train", render=render)
    eval_pairs = load_pairs(eval, file="eval", render=render) if eval is not None else None
    knobs = config.round_config(parent or parent_knobs(adapter))
    use_cpu_threads(model)
    name, _, capability, _ = gpu_info()
    ran = what_runs(knobs, model, choose_precision(capability), name, gpu_decides())
    for change in ran.substitutions:
        print(note(change))
    output_dir = output_dir or f"ftlab-runs/{time.strftime('%Y%m%d-%H%M%S')}-preference"
    tuned = PeftModel.from_pretrained(over_same_weights(model), str(adapter), is_trainable=True)
    args = config.dpo_config(output_dir, ran.precision, eval_pairs is not None, on_gpu=has_gpu(),
                             optim=ran.optimizer, gradient_checkpointing=knobs.gradient_checkpointing)
    with quiet_libraries():  # TRL tokenizes the pairs: a bar each, over in a blink
        trainer = DPOTrainer(model=tuned, ref_model=None, args=args, train_dataset=Dataset.from_list(train_pairs),
                             eval_dataset=Dataset.from_list(eval_pairs) if eval_pairs else None,
                             processing_class=tokenizer, callbacks=callbacks)
    take_over(trainer, callbacks)
    keep_trainables_fp32(trainer.model)
    trainable, total = trainer.model.get_nb_trainable_parameters()
    print(f"Preference round ({config.loss_type}, beta {config.beta:g}) on the adapter in {adapter}: {len(train_pairs)} "
          f"pairs; trainable {trainable:,} of {total:,}; the reference is the same adapter, frozen (TRL's 'ref' adapter)")
    with known_lines_off():
        before = trainer.evaluate()["eval_loss"] if eval_pairs else None
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    return finish(trainer, tokenizer, knobs, ran, output_dir, before, wall, trainable, total)


class PreferenceResult(RoundResult):
    """A preference round's ``RoundResult``: its losses are DPO losses, so it has no perplexity."""

    @property
    def perplexity(self) -> None:
        return None


def finish(trainer, tokenizer, knobs, ran, output_dir, before, wall, trainable, total) -> RoundResult:
    """Save the trained adapter alone (not the "ref" copy), the tokenizer and the logs; the round's numbers."""
    adapter_dir = Path(output_dir) / "adapter"
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(str(adapter_dir), selected_adapters=["default"])
        tokenizer.save_pretrained(str(adapter_dir))
        (Path(output_dir) / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    history = trainer.state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    return PreferenceResult(config=knobs, precision=ran.precision, log_history=history,
                       train_loss=train_losses[-1] if train_losses else None,
                       eval_loss=eval_losses[-1] if eval_losses else None, eval_loss_before=before,
                       wall_time_s=wall, trainable_params=trainable, total_params=total, output_dir=str(output_dir),
                       adapter_dir=str(adapter_dir), model=trainer.model, optimizer=ran.optimizer,
                       substitutions=ran.substitutions, quantization=ran.quantization)
