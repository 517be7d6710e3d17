"""Checks for the exercises: each says what is wrong and which idea to revisit, or confirms success.

An exercise cell marked ``# TODO`` is followed by a cell that calls one of these. A check never
just says "wrong", and never gives the expected answer away: it names the variable, says what is
wrong with it, and points to the idea to revisit. On success it prints a short confirmation and
returns ``True``. A failing check raises :class:`CheckFailed`, which Jupyter shows as its message
alone, without a traceback through this file.
"""

from __future__ import annotations

ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}


class CheckFailed(AssertionError):
    """An exercise answer is not right yet; the message says what is wrong and which idea to revisit.

    IPython (Jupyter, Colab, Kaggle) shows an exception that has ``_render_traceback_`` as the lines
    that method returns, so the learner reads the message, not a traceback through ftlab's source
    that ends in it. It stays an ``AssertionError``: nbmake and pytest still count the cell as failed,
    and plain Python still prints the full traceback.
    """

    def _render_traceback_(self) -> list[str]:
        lines = str(self).splitlines() or ["the check failed"]
        return [f"\x1b[31m✗ {lines[0]}\x1b[0m", *lines[1:]]


def _fail(name: str, got, expected: str, hint: str = "") -> None:
    message = f"{name} is {got!r}, but {expected}."
    if got is None:
        message = f"{name} is still None: fill in the TODO cell above. Expected: {expected}."
    raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))


def _passed(message: str) -> bool:
    print(f"✓ {message}")
    return True


def check_lora_config(lora_config, r: int = 16, alpha: int = 32, targets=ATTENTION) -> bool:
    """A ``peft.LoraConfig`` with rank ``r``, alpha ``alpha`` on ``targets``, for a causal LM."""
    from peft import LoraConfig

    if not isinstance(lora_config, LoraConfig):
        _fail("lora_config", lora_config, "it should be a peft.LoraConfig", "from peft import LoraConfig")
    if lora_config.r != r:
        _fail("lora_config.r", lora_config.r, f"the rank should be {r}")
    if lora_config.lora_alpha != alpha:
        _fail("lora_config.lora_alpha", lora_config.lora_alpha, f"alpha should be {alpha} (scale alpha/r = {alpha / r:g})")
    got = set(lora_config.target_modules or [])
    if got != set(targets):
        _fail("lora_config.target_modules", sorted(got), f"it should be exactly {sorted(targets)}",
              f"missing {sorted(set(targets) - got)}" if set(targets) - got else f"extra {sorted(got - set(targets))}")
    if str(lora_config.task_type) not in ("CAUSAL_LM", "TaskType.CAUSAL_LM"):
        _fail("lora_config.task_type", lora_config.task_type, "it should be 'CAUSAL_LM' for a chat model")
    return _passed(f"LoraConfig: r={r}, alpha={alpha}, on {sorted(targets)}")


def _counts(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _require_peft_model(peft_model) -> None:
    from peft import PeftModel

    if not isinstance(peft_model, PeftModel):
        _fail("peft_model", peft_model, "it should be the model wrapped by peft.get_peft_model(model, lora_config)")


def check_trainable_share(peft_model, share, tolerance: float = 1e-6) -> bool:
    """``share`` = trainable parameters / all parameters of ``peft_model``, and only LoRA trains."""
    _require_peft_model(peft_model)
    not_lora = [n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n]
    if not_lora:
        _fail("the trainable parameters", not_lora[:3], "only LoRA weights (lora_A, lora_B) should train",
              "get_peft_model freezes the base model; did you set requires_grad=True somewhere?")
    trainable, total = _counts(peft_model)
    expected = trainable / total
    if share is None or not isinstance(share, int | float):
        _fail("share", share, f"a number: {trainable:,} trainable / {total:,} total")
    if share > 1:
        _fail("share", share, f"a fraction between 0 and 1 ({expected:.4f}), not a percentage")
    if abs(share - expected) > tolerance:
        _fail("share", round(share, 6), f"the model has {trainable:,} trainable of {total:,} parameters, "
              f"a share of {expected:.6f}", "sum p.numel() over peft_model.parameters(), once for all and once "
              "for those with p.requires_grad")
    return _passed(f"{trainable:,} of {total:,} parameters train: {expected:.2%}")


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
    """``predicted`` = r x (in_features + out_features), summed over every layer that got LoRA."""
    _require_peft_model(peft_model)
    trainable, _ = _counts(peft_model)
    if predicted is None or not isinstance(predicted, int):
        _fail("predicted", predicted, "a whole number of parameters")
    if predicted == _naive_lora_count(peft_model) != trainable:
        _fail("predicted", predicted, "that counts k_proj and v_proj as hidden_size x hidden_size, and this model "
              "does not have them that size", "grouped-query attention: num_key_value_heads < num_attention_heads, so "
              "k_proj and v_proj map hidden_size to num_key_value_heads * head_dim (print model to see their shapes)")
    if predicted != trainable:
        direction = "too high" if predicted > trainable else "too low"
        _fail("predicted", predicted, f"that is {direction} for the LoRA parameters of this model",
              "each adapted Linear(in, out) gets A (r x in) and B (out x r): r * (in + out) parameters; "
              "count the adapted layers in every block")
    return _passed(f"your formula predicts the {trainable:,} LoRA parameters exactly")


def check_em_f1_by_hand(pairs, em, f1) -> bool:
    """``em`` and ``f1``: lists with the exact match (0 or 1) and token F1 of each (prediction, reference)."""
    from ftlab import metrics

    for name, values, function in (("em", em, metrics.exact_match), ("f1", f1, metrics.f1)):
        if not isinstance(values, list | tuple) or len(values) != len(pairs):
            _fail(name, values, f"a list of {len(pairs)} numbers, one per pair")
        for i, ((prediction, reference), value) in enumerate(zip(pairs, values, strict=True)):
            expected = function([prediction], [reference])
            if not isinstance(value, int | float) or abs(value - expected) > 0.01:
                normal = (metrics.normalize_answer(prediction), metrics.normalize_answer(reference))
                _fail(f"{name}[{i}]", value, f"it should be {expected:.3f} for {prediction!r} vs {reference!r}",
                      f"after normalising (lower case, no punctuation, no a/an/the) they read {normal[0]!r} and "
                      f"{normal[1]!r}; F1 = 2PR/(P+R) over the shared tokens")
    return _passed(f"exact match and F1 of all {len(pairs)} pairs are right")


def check_cjk_rouge_tokenizer(tokenizer) -> bool:
    """A rouge-score tokenizer (an object with ``.tokenize(text)``) that keeps Chinese, one token per character."""
    from rouge_score import rouge_scorer

    if tokenizer is None or not hasattr(tokenizer, "tokenize"):
        _fail("tokenizer", tokenizer, "an object with a tokenize(text) method returning a list of tokens")
    reference, near = "今天天气很好", "今天天气不错"
    tokens = tokenizer.tokenize(reference)
    if list(tokens) != list(reference):
        _fail("tokenizer.tokenize('今天天气很好')", tokens, f"one token per character: {list(reference)}")
    scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=tokenizer)
    same = scorer.score(reference, reference)["rouge1"].fmeasure
    partial = scorer.score(reference, near)["rouge1"].fmeasure
    if not (same == 1.0 and 0 < partial < 1):
        _fail("ROUGE-1 with your tokenizer", (same, partial), "1.0 for identical text and between 0 and 1 for "
              "text that shares some characters")
    return _passed(f"ROUGE-1 on Chinese: identical {same:.2f}, near {partial:.2f} (the default tokenizer gives 0.0)")


def check_rows_fixed(fixed_rows, original_rows) -> bool:
    """Every row of ``fixed_rows`` passes validation, and no row was lost on the way."""
    from ftlab.data import validate

    if not isinstance(fixed_rows, list):
        _fail("fixed_rows", fixed_rows, "a list of row dicts: the original rows with the broken ones repaired")
    if len(fixed_rows) != len(original_rows):
        _fail("len(fixed_rows)", len(fixed_rows), f"{len(original_rows)}: repair the broken rows, don't drop them",
              "dropping is what strict=False does; here each row is someone's work")
    findings = validate(fixed_rows, file="fixed_rows")
    if findings:
        _fail("ftlab.data.validate(fixed_rows)", [str(f) for f in findings[:3]], "an empty list")
    return _passed(f"all {len(fixed_rows)} rows are valid and none was lost")


def check_dedup_balance(balanced, rows, per_category: int, by: str = "category") -> bool:
    """``balanced``: ``rows`` without exact duplicates, at most ``per_category`` rows of each category."""
    from collections import Counter

    from ftlab.data import dedup

    if balanced is None or not hasattr(balanced, "__len__"):
        _fail("balanced", balanced, "a Dataset (or list) of rows from ftlab.data.balance")
    unique, _ = dedup(rows, progress=False)
    texts = [str(row["messages"]) for row in balanced]
    if len(set(texts)) != len(texts):
        _fail("balanced", f"{len(texts) - len(set(texts))} duplicate rows", "no duplicates", "dedup before you balance")
    available = Counter(row[by] for row in unique)
    got = Counter(row[by] for row in balanced)
    for category, count in available.items():
        want = min(count, per_category)
        if got.get(category, 0) != want:
            _fail(f"the number of {category!r} rows", got.get(category, 0), f"it should be {want} ({count} unique "
                  f"rows exist, cap {per_category})", "ftlab.data.balance(unique_rows, by='category', per_category=...)")
    return _passed(f"{len(texts)} unique rows, at most {per_category} per category")


def check_prompt_matches(template, row, prompt, text) -> bool:
    """``prompt`` and ``text``: the inference prompt and training text of ``row``; one a prefix of the other."""
    messages = row["messages"]
    if text != template.training_text(messages):
        _fail("text", text, "template.training_text(row['messages']): the exact text the model trains on")
    if prompt != template.prompt(messages):
        _fail("prompt", prompt, "template.prompt(row['messages']): what the model is given at inference")
    if not text.startswith(prompt):
        _fail("prompt", prompt, "a prefix of the training text")
    return _passed(f"the prompt is the training text up to the answer; the model learns {text[len(prompt):]!r}")


# ------------------------------------------------------------------------- exercise 02: fit on a T4
TINYLLAMA = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"


def _lora_count_diagnosis(name: str, got: int, r: int, targets) -> str:
    """Which idea a wrong LoRA count missed (never the right number itself)."""
    from ftlab.sizes import model_shape

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
    if targets == "all-linear" and got == shape.lora_params(r, ["q_proj", "k_proj", "v_proj", "o_proj"]):
        return "'all linear layers' includes the MLP's gate_proj, up_proj and down_proj (intermediate_size)"
    return "revisit r x (in_features + out_features) for every adapted layer, times the number of layers"


def check_tinyllama_lora_counts(lora_qv, lora_all) -> bool:
    """TinyLlama's LoRA parameters: r 8 on q_proj, v_proj (``lora_qv``); r 16 on all linear layers (``lora_all``)."""
    from ftlab.sizes import model_shape

    shape = model_shape(TINYLLAMA)
    for name, got, r, targets in (("lora_qv", lora_qv, 8, ["q_proj", "v_proj"]), ("lora_all", lora_all, 16, "all-linear")):
        if got is None:
            raise CheckFailed(f"{name} is still None: fill in the TODO cell above.")
        if not isinstance(got, int) or isinstance(got, bool):
            raise CheckFailed(f"{name} is {got!r}: it should be a whole number of parameters (an int).")
        if got != shape.lora_params(r, targets):
            raise CheckFailed(f"{name} = {got:,} is not the number of LoRA parameters.\n"
                              f"Hint: {_lora_count_diagnosis(name, got, r, targets)}.")
    return _passed(f"both counts are exact ({lora_qv:,} and {lora_all:,}), grouped-query attention included")


def check_t4_predictions(configs, fits, fastest) -> bool:
    """``fits``: for each config, will it fit on a T4? ``fastest``: the index of the fastest that fits (plan's estimate)."""
    from ftlab.planner import plan

    if fits is None or fastest is None:
        raise CheckFailed("fits or fastest is still None: fill in the TODO cell above.")
    if not isinstance(fits, list | tuple) or len(fits) != len(configs) or not all(isinstance(f, bool) for f in fits):
        raise CheckFailed(f"fits should be a list of {len(configs)} True/False values, one per configuration.")
    plans = [plan(TINYLLAMA, gpu="T4", **c) for c in configs]
    for i, (p, guess) in enumerate(zip(plans, fits, strict=True)):
        if guess != p.fits:
            idea = ("what activations cost per token and layer, and what gradient checkpointing keeps of them"
                    if p.largest.name.startswith("activations") else "how many bytes a weight takes in fp16 and NF4")
            raise CheckFailed(f"fits[{i}] is not right for configuration {i} ({configs[i]}).\n"
                              f"Hint: add up the terms with the memory of a T4 in mind; revisit {idea}.")
    fitting = [i for i, p in enumerate(plans) if p.fits]
    if not isinstance(fastest, int) or fastest not in range(len(configs)):
        raise CheckFailed(f"fastest should be the index (0 to {len(configs) - 1}) of one configuration.")
    if fastest not in fitting:
        raise CheckFailed(f"configuration {fastest} does not fit on a T4, so it cannot be the fastest that does.")
    best = min(fitting, key=lambda i: plans[i].epoch_s)
    if fastest != best:
        raise CheckFailed(f"configuration {fastest} is not the fastest that fits.\nHint: revisit what 4-bit weights "
                          "(dequantized in every matmul) and gradient checkpointing (a second forward pass) cost "
                          "in time, against what a bigger micro-batch saves.")
    return _passed(f"all {len(configs)} predictions right; configuration {best} is the fastest that fits "
                   f"(~{plans[best].epoch_s / 60:.0f} min per epoch, an estimate until calibrated on a T4)")


def _lr_range(finding) -> tuple[float, float]:
    return finding.lrs[0], finding.lrs[-1]


def check_lr_reading(finding, good_lr, too_high_lr) -> bool:
    """Exercise 05: a learning rate that trains well and one where training diverges, read off ``finding``."""
    if good_lr is None or too_high_lr is None:
        raise CheckFailed("good_lr or too_high_lr is still None: fill in the TODO cell above.")
    low, high = _lr_range(finding)
    for name, value in (("good_lr", good_lr), ("too_high_lr", too_high_lr)):
        if not isinstance(value, int | float) or not low <= value <= high:
            raise CheckFailed(f"{name} should be a learning rate inside the range the test tried ({low:.0e} to "
                              f"{high:.0e}); read it off the x axis of finding.plot().")
    bottom = finding.lrs[min(range(len(finding.smoothed)), key=finding.smoothed.__getitem__)]
    if good_lr >= bottom:
        raise CheckFailed("good_lr sits where the smoothed loss has stopped falling or climbs again.\n"
                          "Hint: revisit how the range test is read: a good lr is where the loss falls fastest, "
                          "before its lowest point, not at or after it.")
    if good_lr < bottom / 1000:
        raise CheckFailed("good_lr is where the curve is still flat: steps that small barely move the weights "
                          "in a short round.\nHint: revisit why the loss stays flat at the left of the curve.")
    if too_high_lr < bottom / 2:
        raise CheckFailed("at too_high_lr the smoothed loss was still falling in the range test.\nHint: revisit "
                          "where divergence begins: after the lowest point, where the curve turns upward.")
    return _passed("both learning rates read off the curve; now confirm them with two rounds")


def check_lr_rounds(lab, good_lr, too_high_lr) -> bool:
    """Exercise 05: rounds named "good" and "too high" in ``lab`` at those learning rates confirm the reading."""
    import math

    rounds = {r.name: r for r in lab.rounds()}
    for name, lr in (("good", good_lr), ("too high", too_high_lr)):
        if name not in rounds:
            raise CheckFailed(f"the lab has no round named {name!r}: train it with lab.train(..., name={name!r}).")
        if not math.isclose(rounds[name].config.learning_rate, lr, rel_tol=1e-3):
            raise CheckFailed(f"round {name!r} did not train at the learning rate you predicted for it; set "
                              f"learning_rate in its RoundConfig to that value.")
    good, bad = rounds["good"], rounds["too high"]
    if good.status != "succeeded":
        raise CheckFailed(f"round 'good' is {good.status}: {good.verdict()}\nHint: revisit the left part of the "
                          "curve: a good lr sits well before the loss turns upward.")
    before, after = good.metrics.get("eval_loss_before"), good.metrics.get("eval_loss")
    if before is None or after is None:
        raise CheckFailed("round 'good' has no eval loss: pass the evaluation rows to lab.train.")
    if after > 0.8 * before:
        raise CheckFailed("round 'good' barely learned (its eval loss fell less than 20%).\nHint: revisit where "
                          "the range test's loss falls fastest; a step much smaller than that hardly moves.")
    worse = bad.status in ("diverged", "failed") or (bad.metrics.get("eval_loss") or 0) > after + 0.3 * (before - after)
    if not worse:
        raise CheckFailed("round 'too high' learned about as well as 'good': it did not diverge.\nHint: revisit "
                          "where the smoothed loss climbs back in the range test, and predict higher.")
    return _passed("the prediction holds: 'good' learned, 'too high' " +
                   ("diverged" if bad.status == "diverged" else "learned clearly worse"))


# the GPUs of exercise 02's precision question, with their compute capability (None: no GPU)
PRECISION_DEVICES = {"T4": (7, 5), "V100": (7, 0), "A100": (8, 0), "L4": (8, 9), "CPU": None}


def _precision_diagnosis(device: str, got: str, capability) -> str:
    """Why ``got`` is the wrong precision for ``device`` (never naming the right one)."""
    if capability is None:
        return ("revisit what half precision needs from the hardware (tensor cores, a GPU's autocast) and "
                "whether a CPU has it")
    if got == "fp32":
        return (f"a GPU with compute capability {capability[0]}.{capability[1]} has half-precision tensor cores that fp32 "
                "leaves idle, and fp32 doubles the memory of activations: revisit mixed precision")
    if got == "bf16":
        return (f"compute capability {capability[0]}.{capability[1]} has no native bf16 (torch.cuda.is_bf16_supported() "
                "may still say True: it counts emulation). Revisit which GPU generation brought bf16")
    return ("fp16 runs here, but needs loss scaling to keep small gradients from underflowing; revisit which "
            "16-bit format keeps fp32's exponent range, and from which compute capability it runs natively")


def check_precision_choice(precision) -> bool:
    """Exercise 02: ``precision`` maps each device of ``PRECISION_DEVICES`` to "fp16", "bf16" or "fp32"."""
    from ftlab.env import choose_precision

    if precision is None:
        raise CheckFailed("precision is still None: fill in the TODO cell above.")
    if not isinstance(precision, dict):
        raise CheckFailed(f"precision should be a dict from device name to 'fp16', 'bf16' or 'fp32', not a "
                          f"{type(precision).__name__}.")
    missing = [d for d in PRECISION_DEVICES if d not in precision]
    if missing:
        raise CheckFailed(f"precision has no entry for {', '.join(missing)}: give one for each of "
                          f"{', '.join(PRECISION_DEVICES)}.")
    wrong = []
    for device, capability in PRECISION_DEVICES.items():
        got = precision[device]
        if got not in ("fp16", "bf16", "fp32"):
            raise CheckFailed(f"precision[{device!r}] is {got!r}: each value should be 'fp16', 'bf16' or 'fp32'.")
        if got != choose_precision(capability):
            wrong.append(f"precision[{device!r}] = {got!r} is not what the hardware calls for.\n"
                         f"Hint: {_precision_diagnosis(device, got, capability)}.")
    if wrong:
        raise CheckFailed(f"Wrong precision for {len(wrong)} of {len(PRECISION_DEVICES)} devices. The first:\n"
                          + wrong[0])
    return _passed("each device gets the precision ftlab.setup() would choose for it (ftlab.choose_precision)")
