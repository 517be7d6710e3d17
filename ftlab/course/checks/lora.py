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
    # no count here: part 3 predicts the trainable count, and a success message must not hand it over
    return passed("share is the trainable part of peft_model: LoRA trains a small slice of the model")


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


def lora_count(cfg, r: int) -> int:
    """LoRA's parameters at rank ``r`` on the four attention projections of a Llama-style ``cfg``: r x (in + out) per
    adapted Linear, k_proj and v_proj mapping to num_key_value_heads x head_dim (grouped-query attention)."""
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    q_out, kv_out = cfg.num_attention_heads * head_dim, cfg.num_key_value_heads * head_dim
    per_layer = r * (cfg.hidden_size + q_out) + 2 * r * (cfg.hidden_size + kv_out) + r * (q_out + cfg.hidden_size)
    return cfg.num_hidden_layers * per_layer


def _fresh_configs(cfg):
    """Other Llama-shaped models and ranks the learner's formula has never seen: other widths, depths, heads."""
    from transformers import LlamaConfig

    shapes = [(cfg.hidden_size * 2, cfg.num_hidden_layers + 3, cfg.num_attention_heads, 1),
              (96, 5, 6, 3), (256, 1, 8, 8), (2048, 22, 32, 4)]  # the last: TinyLlama's shape
    return [(LlamaConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=a, num_key_value_heads=kv,
                         intermediate_size=4 * h, vocab_size=64), r)
            for (h, n, a, kv), r in zip(shapes, (4, 8, 2, 16), strict=True)]


def check_lora_param_count(peft_model, predicted_count) -> bool:
    """Exercise 00: ``predicted_count(cfg, r)`` gives r x (in_features + out_features) summed over every attention
    projection that gets LoRA, for any Llama-shaped config: it is called on this model and on models it never saw
    (other widths, depths, key/value heads, ranks), so a number copied from elsewhere cannot pass."""
    _require_peft_model(peft_model)
    trainable, _ = _counts(peft_model)
    still_none("predicted_count", predicted_count)
    if not callable(predicted_count):
        mistake(f"predicted_count is a {type(predicted_count).__name__}: it should be a function of (cfg, r) that "
                "computes the count from the shapes.", "def predicted_count(cfg, r): ... return the formula as an int")
    cfg, r = peft_model.config, next(iter(peft_model.peft_config.values())).r
    assert lora_count(cfg, r) == trainable, "the check's own formula disagrees with PEFT's count"
    cases = [(cfg, r), *_fresh_configs(cfg)]
    got = []
    for case_cfg, case_r in cases:
        try:
            value = predicted_count(case_cfg, case_r)
        except Exception as error:  # the learner's code: say what broke, in their terms
            mistake(f"predicted_count(cfg, r) raised {type(error).__name__}: {error}",
                    "read every size from cfg (hidden_size, num_hidden_layers, num_attention_heads, "
                    "num_key_value_heads) and the rank from r")
        if not isinstance(value, int) or isinstance(value, bool):
            mistake(f"predicted_count(cfg, r) returned a {type(value).__name__}: it should be a whole number (an int).",
                    "int(...)")
        got.append(value)
    right = [lora_count(c, k) for c, k in cases]
    if got == right:
        return passed("your formula predicts the LoRA parameters of this model and of others it never saw")
    naive = [lora_count(_without_gqa(c), k) for c, k in cases]
    one_layer = [n // c.num_hidden_layers for n, (c, _) in zip(right, cases, strict=True)]
    if got == naive:
        mistake("predicted_count counts k_proj and v_proj as hidden_size x hidden_size, and models with grouped-query "
                "attention do not have them that size.", "grouped-query attention: num_key_value_heads < "
                "num_attention_heads, so k_proj and v_proj map hidden_size to num_key_value_heads * head_dim "
                "(print(model) shows their shapes)")
    if got == one_layer:
        mistake("predicted_count gives one decoder layer's worth.", "every one of the num_hidden_layers layers gets "
                "adapters")
    if all(g == got[0] for g in got):
        mistake("predicted_count gives the same number for every model and rank: it does not compute from them.",
                "the count follows from the shapes: read them from cfg and the rank from r")
    mistake("predicted_count does not give the LoRA parameters of every model it was tried on (this one and "
            "others of other shapes).", "each adapted Linear(in, out) gets A (r x in) and B (out x r): r * (in + out) "
            "parameters, summed over q_proj, k_proj, v_proj, o_proj and over the layers")


def _without_gqa(cfg):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
                       num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_attention_heads,
                       intermediate_size=4 * cfg.hidden_size, vocab_size=64)
