"""Checks of exercise 02 (will it fit on a T4, and in which precision)."""

from __future__ import annotations

from ftlab.config import ATTENTION
from ftlab.course.checks.base import CheckFailed, passed
from ftlab.machine import choose_precision
from ftlab.memory.estimate import plan
from ftlab.memory.shapes import model_shape
from ftlab.models.loading import DEFAULT_MODEL

TINYLLAMA = DEFAULT_MODEL  # the course's model: the exercise counts and plans for it


def _lora_count_diagnosis(name: str, got: int, r: int, targets) -> str:
    """Which idea a wrong LoRA count missed (never the right number itself)."""
    shape = model_shape(TINYLLAMA)
    chosen = [t for t, *_ in shape.linears] if targets == "all-linear" else targets
    layers = shape.layers
    per_layer = {t: (i, o) for t, i, o, _ in shape.linears}
    without_gqa = sum(r * (i + (i if t in ("k_proj", "v_proj") else o)) for t, (i, o) in per_layer.items()
                      if t in chosen) * layers
    right = shape.lora_params(r, chosen)
    if got == without_gqa:
        return ("you gave k_proj and v_proj as many outputs as q_proj. Revisit grouped-query attention: "
                "num_key_value_heads x head_dim (hidden_size / num_attention_heads) is their output size")
    if got * layers == right:
        return "that is one decoder layer's worth: revisit how many layers carry adapters (num_hidden_layers)"
    if got in (sum(r * per_layer[t][side] for t in chosen) * layers for side in (0, 1)):  # only A or only B
        return "each adapted Linear(in, out) gets A (r x in) and B (out x r): revisit the LoRA update B @ A"
    if targets == "all-linear" and got == shape.lora_params(r, list(ATTENTION)):
        return "'all linear layers' includes the MLP's gate_proj, up_proj and down_proj (intermediate_size)"
    return "revisit r x (in_features + out_features) for every adapted layer, times the number of layers"


def check_tinyllama_lora_counts(lora_qv, lora_all) -> bool:
    """TinyLlama's LoRA parameters: r 8 on q_proj, v_proj (``lora_qv``); r 16 on all linear layers (``lora_all``)."""
    shape = model_shape(TINYLLAMA)
    for name, got, r, targets in (("lora_qv", lora_qv, 8, ["q_proj", "v_proj"]), ("lora_all", lora_all, 16, "all-linear")):
        if got is None:
            raise CheckFailed(f"{name} is still None: fill in the TODO cell above.")
        if not isinstance(got, int) or isinstance(got, bool):
            raise CheckFailed(f"{name} is {got!r}: it should be a whole number of parameters (an int).")
        if got != shape.lora_params(r, targets):
            raise CheckFailed(f"{name} = {got:,} is not the number of LoRA parameters.\n"
                              f"Hint: {_lora_count_diagnosis(name, got, r, targets)}.")
    return passed(f"both counts are exact ({lora_qv:,} and {lora_all:,}), grouped-query attention included")


def check_t4_predictions(configs, fits, fastest) -> bool:
    """``fits``: for each config, will it fit on a T4? ``fastest``: the index of the fastest that fits (plan's estimate)."""
    if fits is None or fastest is None:
        raise CheckFailed("fits or fastest is still None: fill in the TODO cell above.")
    if not isinstance(fits, list | tuple) or len(fits) != len(configs) or not all(isinstance(f, bool) for f in fits):
        raise CheckFailed(f"fits should be a list of {len(configs)} True/False values, one per configuration.")
    if not isinstance(fastest, int) or isinstance(fastest, bool) or fastest not in range(len(configs)):
        raise CheckFailed(f"fastest should be the index (0 to {len(configs) - 1}) of one configuration.")
    plans = [plan(TINYLLAMA, gpu="T4", **c) for c in configs]
    fitting = [i for i, p in enumerate(plans) if p.fits]
    best = min(fitting, key=lambda i: plans[i].epoch_s)
    # graded as a whole: a verdict per index (or "this one does not fit") would let a flip-and-rerun pass
    if list(fits) != [p.fits for p in plans] or fastest != best:
        raise CheckFailed("fits and fastest are not both right: the check grades them together, so it does not say "
                          "which entry is wrong.\nHint: for each configuration add up the terms against a T4's memory "
                          "(weights: bytes per parameter in fp16 and NF4; activations: per token and layer, and what "
                          "gradient checkpointing keeps of them); then, among those that fit, weigh what 4-bit weights "
                          "(dequantized in every matmul) and checkpointing (a second forward pass) cost in time "
                          "against what a bigger micro-batch saves.")
    return passed(f"all {len(configs)} predictions right (~{plans[best].epoch_s / 60:.0f} min per epoch for the fastest, "
                  "an estimate until calibrated on a T4)")


# the GPUs of exercise 02's precision question, with their compute capability (None: no GPU)
PRECISION_DEVICES = {"T4": (7, 5), "V100": (7, 0), "A100": (8, 0), "L4": (8, 9), "CPU": None}


def check_precision_choice(precision) -> bool:
    """Exercise 02: ``precision`` maps each device of ``PRECISION_DEVICES`` to "fp16", "bf16" or "fp32"."""
    if precision is None:
        raise CheckFailed("precision is still None: fill in the TODO cell above.")
    if not isinstance(precision, dict):
        raise CheckFailed(f"precision should be a dict from device name to 'fp16', 'bf16' or 'fp32', not a "
                          f"{type(precision).__name__}.")
    missing = [d for d in PRECISION_DEVICES if d not in precision]
    if missing:
        raise CheckFailed(f"precision has no entry for {', '.join(missing)}: give one for each of "
                          f"{', '.join(PRECISION_DEVICES)}.")
    for device in PRECISION_DEVICES:
        if precision[device] not in ("fp16", "bf16", "fp32"):
            raise CheckFailed(f"precision[{device!r}] is {precision[device]!r}: each value should be 'fp16', 'bf16' "
                              "or 'fp32'.")
    # graded as a whole: naming the device that is wrong would leave two values to try
    if any(precision[d] != choose_precision(c) for d, c in PRECISION_DEVICES.items()):
        raise CheckFailed("precision is not what the hardware calls for on every device (graded as a whole).\n"
                          "Hint: revisit what half precision needs from the hardware (a GPU's tensor cores; a CPU "
                          "has none); which 16-bit format keeps single precision's exponent range, and from which "
                          "compute capability it runs natively (torch.cuda calls it supported where it is only "
                          "emulated); and which 16-bit format needs loss scaling, and why.")
    return passed("each device gets the precision ftlab.setup() would choose for it (ftlab.choose_precision)")
