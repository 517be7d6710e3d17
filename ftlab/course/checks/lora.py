"""Checks of exercise 00 (configure LoRA and count what trains)."""

from __future__ import annotations

from ftlab.config import ATTENTION
from ftlab.course.checks.base import close_to, mistake, passed, still_none


def check_lora_config(lora_config, r: int = 16, alpha: int = 32, targets=ATTENTION) -> bool:
    """Exercise 00: a ``peft.LoraConfig`` with rank ``r``, alpha ``alpha`` on ``targets``, for a causal LM."""
    from peft import LoraConfig

    still_none("lora_config", lora_config)
    if not isinstance(lora_config, LoraConfig):
        mistake(f"lora_config is a {type(lora_config).__name__}, not a peft.LoraConfig.", "from peft import LoraConfig")
    if lora_config.r != r:
        mistake(f"lora_config.r is {lora_config.r}: not the rank the task asks for.",
               "r is the rank of the update B A, the number of directions it may use (chapter 00, section 1)")
    if lora_config.lora_alpha != alpha:
        mistake(f"lora_config.lora_alpha is {lora_config.lora_alpha}: not the alpha the task asks for.",
               "alpha scales the update by alpha / r; it is a separate knob from r (chapter 00, section 1)")
    got = set(lora_config.target_modules or [])
    if got != set(targets):
        missing, extra = len(set(targets) - got), sorted(got - set(targets))
        mistake(f"lora_config.target_modules {f'leaves out {missing} of the layers the task names' if missing else ''}"
               f"{' and ' if missing and extra else ''}{f'adds {extra}, which the task does not name' if extra else ''}.",
               "print(model) shows the attention projections' names inside each LlamaAttention block")
    if str(lora_config.task_type) not in ("CAUSAL_LM", "TaskType.CAUSAL_LM"):
        mistake(f"lora_config.task_type is {lora_config.task_type!r}.",
               "a chat model predicts the next token: PEFT calls that a causal language model")
    return passed(f"LoraConfig: r={r}, alpha={alpha}, on {sorted(targets)}")


def _counts(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _require_peft_model(peft_model) -> None:
    from peft import PeftModel

    still_none("peft_model", peft_model)
    if not isinstance(peft_model, PeftModel):
        mistake(f"peft_model is a {type(peft_model).__name__}, not a model wrapped with LoRA adapters.",
               "peft.get_peft_model(model, lora_config) wraps a model")


def check_trainable_share(peft_model, share, tolerance: float = 1e-6) -> bool:
    """Exercise 00: ``share`` = trainable parameters / all parameters of ``peft_model``, and only LoRA trains."""
    _require_peft_model(peft_model)
    not_lora = [n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n]
    if not_lora:
        mistake(f"{len(not_lora)} parameters that are not LoRA's train, e.g. {not_lora[0]}.",
               "get_peft_model freezes the base model; only lora_A and lora_B should have requires_grad")
    trainable, total = _counts(peft_model)
    still_none("share", share)
    if not isinstance(share, int | float) or isinstance(share, bool):
        mistake(f"share is a {type(share).__name__}: it should be a number.", "share = trainable / total")
    right = trainable / total
    if close_to(share, 100 * right, tolerance):
        mistake("share looks like a percentage: the check wants a fraction between 0 and 1.", "share = trainable / total")
    if share > 1:
        mistake("share is more than 1: a part cannot be larger than the whole.",
               "which count goes on top: the trainable parameters are a part of all parameters")
    if close_to(share, trainable / (total - trainable), tolerance):
        mistake("share divides by the base model's parameters only: the adapters are parameters of peft_model too.",
               "count every parameter of peft_model for the total, LoRA's included")
    if not close_to(share, right, tolerance):
        mistake(f"share = {share:.6g} is not trainable / total for peft_model.",
               "sum p.numel() over peft_model.parameters(): all of them for the total, and only those with "
               "p.requires_grad for the trainable count")
    return passed(f"{trainable:,} of {total:,} parameters train: {right:.2%}")


def _naive_lora_count(peft_model) -> int:
    """The LoRA count if k_proj and v_proj were hidden x hidden, as without grouped-query attention."""
    total = 0
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and hasattr(module, "base_layer"):
            r = sum(a.out_features for a in module.lora_A.values())
            base = module.base_layer
            out = base.in_features if name.endswith(("k_proj", "v_proj")) else base.out_features
            total += r * (base.in_features + out)
    return total


def check_lora_param_count(peft_model, predicted) -> bool:
    """Exercise 00: ``predicted`` = r x (in_features + out_features), summed over every layer that got LoRA."""
    _require_peft_model(peft_model)
    trainable, _ = _counts(peft_model)
    still_none("predicted", predicted)
    if not isinstance(predicted, int) or isinstance(predicted, bool):
        mistake(f"predicted is a {type(predicted).__name__}: it should be a whole number (an int).", "int(...)")
    layers = peft_model.config.num_hidden_layers
    if predicted == _naive_lora_count(peft_model) != trainable:
        mistake("predicted counts k_proj and v_proj as hidden_size x hidden_size, and this model does not have them "
               "that size.", "grouped-query attention: num_key_value_heads < num_attention_heads, so k_proj and v_proj "
               "map hidden_size to num_key_value_heads * head_dim (print(model) shows their shapes)")
    if predicted * layers == trainable:
        mistake("predicted is one decoder layer's worth.", "every one of the num_hidden_layers layers gets adapters")
    if predicted != trainable:
        mistake(f"predicted is {'too high' if predicted > trainable else 'too low'} for the LoRA parameters of this model.",
               "each adapted Linear(in, out) gets A (r x in) and B (out x r): r * (in + out) parameters")
    return passed(f"your formula predicts the {trainable:,} LoRA parameters exactly")
