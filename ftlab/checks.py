"""Checks for the exercises: each says what is wrong and what was expected, or confirms success.

An exercise cell marked ``# TODO`` is followed by a cell that calls one of these. A check never
just says "wrong": it names the variable, what it holds, what was expected, and a hint towards the
fix. On success it prints a short confirmation and returns ``True``.
"""

from __future__ import annotations

ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}


class CheckFailed(AssertionError):
    """An exercise answer is not right yet; the message says why and what was expected."""


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


def check_lora_param_count(peft_model, predicted) -> bool:
    """``predicted`` = r x (in_features + out_features), summed over every layer that got LoRA."""
    _require_peft_model(peft_model)
    trainable, _ = _counts(peft_model)
    if predicted is None or not isinstance(predicted, int):
        _fail("predicted", predicted, "a whole number of parameters")
    if predicted != trainable:
        _fail("predicted", predicted, f"LoRA adds {trainable:,} parameters to this model",
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
