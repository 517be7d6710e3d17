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


def _wrong(message: str, revisit: str) -> None:
    """Fail with what is wrong and the idea to revisit (never the expected value)."""
    raise CheckFailed(f"{message}\nRevisit: {revisit}.")


def _still_none(name: str, value) -> None:
    if value is None:
        raise CheckFailed(f"{name} is still None: fill in the TODO cell above.")


def check_lora_config(lora_config, r: int = 16, alpha: int = 32, targets=ATTENTION) -> bool:
    """Exercise 00: a ``peft.LoraConfig`` with rank ``r``, alpha ``alpha`` on ``targets``, for a causal LM."""
    from peft import LoraConfig

    _still_none("lora_config", lora_config)
    if not isinstance(lora_config, LoraConfig):
        _wrong(f"lora_config is a {type(lora_config).__name__}, not a peft.LoraConfig.", "from peft import LoraConfig")
    if lora_config.r != r:
        _wrong(f"lora_config.r is {lora_config.r}: not the rank the task asks for.",
               "r is the rank of the update B A, the number of directions it may use (chapter 00, section 1)")
    if lora_config.lora_alpha != alpha:
        _wrong(f"lora_config.lora_alpha is {lora_config.lora_alpha}: not the alpha the task asks for.",
               "alpha scales the update by alpha / r; it is a separate knob from r (chapter 00, section 1)")
    got = set(lora_config.target_modules or [])
    if got != set(targets):
        missing, extra = len(set(targets) - got), sorted(got - set(targets))
        _wrong(f"lora_config.target_modules {f'leaves out {missing} of the layers the task names' if missing else ''}"
               f"{' and ' if missing and extra else ''}{f'adds {extra}, which the task does not name' if extra else ''}.",
               "print(model) shows the attention projections' names inside each LlamaAttention block")
    if str(lora_config.task_type) not in ("CAUSAL_LM", "TaskType.CAUSAL_LM"):
        _wrong(f"lora_config.task_type is {lora_config.task_type!r}.",
               "a chat model predicts the next token: PEFT calls that a causal language model")
    return _passed(f"LoraConfig: r={r}, alpha={alpha}, on {sorted(targets)}")


def _counts(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _require_peft_model(peft_model) -> None:
    from peft import PeftModel

    _still_none("peft_model", peft_model)
    if not isinstance(peft_model, PeftModel):
        _wrong(f"peft_model is a {type(peft_model).__name__}, not a model wrapped with LoRA adapters.",
               "peft.get_peft_model(model, lora_config) wraps a model")


def _close(a: float, b: float, tolerance: float = 1e-6) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(b))


def check_trainable_share(peft_model, share, tolerance: float = 1e-6) -> bool:
    """Exercise 00: ``share`` = trainable parameters / all parameters of ``peft_model``, and only LoRA trains."""
    _require_peft_model(peft_model)
    not_lora = [n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n]
    if not_lora:
        _wrong(f"{len(not_lora)} parameters that are not LoRA's train, e.g. {not_lora[0]}.",
               "get_peft_model freezes the base model; only lora_A and lora_B should have requires_grad")
    trainable, total = _counts(peft_model)
    _still_none("share", share)
    if not isinstance(share, int | float) or isinstance(share, bool):
        _wrong(f"share is a {type(share).__name__}: it should be a number.", "share = trainable / total")
    right = trainable / total
    if _close(share, 100 * right, tolerance):
        _wrong("share looks like a percentage: the check wants a fraction between 0 and 1.", "share = trainable / total")
    if share > 1:
        _wrong("share is more than 1: a part cannot be larger than the whole.",
               "which count goes on top: the trainable parameters are a part of all parameters")
    if _close(share, trainable / (total - trainable), tolerance):
        _wrong("share divides by the base model's parameters only: the adapters are parameters of peft_model too.",
               "count every parameter of peft_model for the total, LoRA's included")
    if not _close(share, right, tolerance):
        _wrong(f"share = {share:.6g} is not trainable / total for peft_model.",
               "sum p.numel() over peft_model.parameters(): all of them for the total, and only those with "
               "p.requires_grad for the trainable count")
    return _passed(f"{trainable:,} of {total:,} parameters train: {right:.2%}")


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
    _still_none("predicted", predicted)
    if not isinstance(predicted, int) or isinstance(predicted, bool):
        _wrong(f"predicted is a {type(predicted).__name__}: it should be a whole number (an int).", "int(...)")
    layers = peft_model.config.num_hidden_layers
    if predicted == _naive_lora_count(peft_model) != trainable:
        _wrong("predicted counts k_proj and v_proj as hidden_size x hidden_size, and this model does not have them "
               "that size.", "grouped-query attention: num_key_value_heads < num_attention_heads, so k_proj and v_proj "
               "map hidden_size to num_key_value_heads * head_dim (print(model) shows their shapes)")
    if predicted * layers == trainable:
        _wrong("predicted is one decoder layer's worth.", "every one of the num_hidden_layers layers gets adapters")
    if predicted != trainable:
        _wrong(f"predicted is {'too high' if predicted > trainable else 'too low'} for the LoRA parameters of this model.",
               "each adapted Linear(in, out) gets A (r x in) and B (out x r): r * (in + out) parameters")
    return _passed(f"your formula predicts the {trainable:,} LoRA parameters exactly")


def check_em_f1_by_hand(pairs, em, f1) -> bool:
    """``em`` and ``f1``: lists with the exact match (0 or 1) and token F1 of each (prediction, reference).

    A wrong value is named with the direction of the mistake and the step of the rule to redo; the
    right value is never printed (a learner who copies it learns nothing).
    """
    from ftlab import metrics

    for name, values, function in (("em", em, metrics.exact_match), ("f1", f1, metrics.f1)):
        if not isinstance(values, list | tuple) or len(values) != len(pairs):
            _fail(name, values, f"a list of {len(pairs)} numbers, one per pair")
        for i, ((prediction, reference), value) in enumerate(zip(pairs, values, strict=True)):
            expected = function([prediction], [reference])
            if not isinstance(value, int | float) or isinstance(value, bool):
                _fail(f"{name}[{i}]", value, "a number")
            if abs(value - expected) <= 0.01:
                continue
            pair = f"{prediction!r} vs {reference!r}"
            if name == "em":
                idea = ("exact match is 1 only when the two *normalised* strings are equal: lower-case, drop punctuation "
                        "and the articles a/an/the, squeeze spaces, then compare." + (
                            " Normalising can make two different-looking strings equal." if expected else
                            " One extra or missing word after normalising makes it 0."))
                raise CheckFailed(f"em[{i}] is not right for {pair}.\nHint: revisit the normalisation: {idea}")
            direction = "too high" if value > expected else "too low"
            raise CheckFailed(f"f1[{i}] is {direction} for {pair}.\nHint: normalise both first (articles and "
                              "punctuation go), then count the tokens they share: P = shared / prediction tokens, "
                              "R = shared / reference tokens, F1 = 2PR / (P + R).")
    return _passed(f"exact match and F1 of all {len(pairs)} pairs are right")


def check_cjk_rouge_tokenizer(tokenizer) -> bool:
    """A rouge-score tokenizer (an object with ``.tokenize(text)``) that keeps Chinese, one token per character."""
    from rouge_score import rouge_scorer

    if tokenizer is None or not hasattr(tokenizer, "tokenize"):
        _fail("tokenizer", tokenizer, "an object with a tokenize(text) method returning a list of tokens")
    reference, near = "今天天气很好", "今天天气不错"
    tokens = list(tokenizer.tokenize(reference))
    if tokens != list(reference):
        how = (f"{len(tokens)} tokens for {len(reference)} characters" if len(tokens) != len(reference) else
               "tokens that are not the characters themselves")
        raise CheckFailed(f"tokenizer.tokenize('{reference}') gives {how}.\nHint: revisit what rouge-score's default "
                          "tokenizer does wrong: it splits on ASCII words, so Chinese must be split per character.")
    scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=tokenizer)
    same = scorer.score(reference, reference)["rouge1"].fmeasure
    partial = scorer.score(reference, near)["rouge1"].fmeasure
    if not (same == 1.0 and 0 < partial < 1):
        raise CheckFailed("ROUGE-1 with your tokenizer should be 1 for identical text and between 0 and 1 for text "
                          "that shares some characters.\nHint: revisit ROUGE-1: the share of the reference's "
                          "tokens found in the prediction.")
    return _passed(f"ROUGE-1 on Chinese: identical {same:.2f}, near {partial:.2f} (the default tokenizer gives 0.0)")


def check_rows_fixed(fixed_rows, original_rows) -> bool:
    """Every row of ``fixed_rows`` passes validation, and no row was lost on the way."""
    from ftlab.data import validate

    _still_none("fixed_rows", fixed_rows)
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
    """Exercise 01: ``balanced``: ``rows`` without exact duplicates, at most ``per_category`` rows of each category."""
    from collections import Counter

    from ftlab.data import dedup

    _still_none("balanced", balanced)
    if not hasattr(balanced, "__len__"):
        _wrong(f"balanced is a {type(balanced).__name__}: it should be the rows ftlab.data.balance returns.",
               "balance returns (rows, table)")
    unique, _ = dedup(rows, progress=False)
    texts = [str(row["messages"]) for row in balanced]
    if len(set(texts)) != len(texts):
        _wrong(f"balanced holds {len(texts) - len(set(texts))} duplicate rows.",
               "deduplicate before you balance, or the copies take the places of distinct rows")
    available, got = Counter(row[by] for row in unique), Counter(row[by] for row in balanced)
    for category, count in available.items():
        if got.get(category, 0) > min(count, per_category):
            _wrong(f"balanced has more {category!r} rows than it may.", "per_category caps each category")
        if got.get(category, 0) < min(count, per_category):
            _wrong(f"balanced has fewer {category!r} rows than it could keep.",
                   "a category keeps all its unique rows when it has fewer than per_category; did you sample "
                   "from the deduplicated rows, with the cap the task gives?")
    return _passed(f"{len(texts)} unique rows, at most {per_category} per category")


def check_prompt_matches(template, row, prompt, text) -> bool:
    """Exercise 01: ``prompt`` and ``text``: the inference prompt and training text of ``row``."""
    messages = row["messages"]
    _still_none("text", text)
    _still_none("prompt", prompt)
    answer = messages[-1]["content"]
    if text != template.training_text(messages):
        if answer not in str(text):
            _wrong("text does not contain the answer.", "the training text is the whole conversation, answer included")
        _wrong("text is not the text the model trains on for this row.",
               "the template turns a row into one text: special tokens, role tags and the end-of-turn token "
               "after the answer (template.show prints it)")
    if prompt != template.prompt(messages):
        if answer in str(prompt):
            _wrong("prompt contains the answer: at inference the model has to write it.",
                   "the prompt is the conversation before the answer")
        _wrong("prompt is not what the model is given at inference.",
               "the prompt must end exactly where the model starts writing: with the assistant's role tag, as the "
               "training text has it before the answer")
    return _passed(f"the prompt is the training text up to the answer; the model learns {text[len(prompt):]!r}")


def check_label_mask(template, messages, input_ids, labels) -> bool:
    """Exercise 01: ``labels`` for ``input_ids``: the token id where the loss counts (the answer and its
    end-of-turn token), -100 everywhere else, as ftlab's mask (``Template.encode``) has it."""
    ids, mask = template.encode(messages)
    _still_none("labels", labels)
    if list(input_ids) != ids:
        _wrong("input_ids are not the tokens of this row's training text.", "leave input_ids as the cell made them")
    if not isinstance(labels, list | tuple) or len(labels) != len(ids):
        _wrong(f"labels should be a list with one entry per token of input_ids ({len(ids)} of them).",
               "the trainer pairs input_ids[i] with labels[i]")
    if any(label == 0 for label, m in zip(labels, mask, strict=True) if not m) and -100 not in labels:
        _wrong("labels marks the masked tokens with 0: to the loss that is a real token id.",
               "cross-entropy ignores the positions whose label is -100 (ignore_index)")
    eot = template.tokenizer.convert_tokens_to_ids(template.end_of_turn)
    wrong = [i for i, (label, token, m) in enumerate(zip(labels, ids, mask, strict=True)) if label != (token if m else -100)]
    if not wrong:
        return _passed(f"your mask matches ftlab's: {sum(mask)} of {len(ids)} tokens carry the loss")
    first = wrong[0]
    start, end = mask.index(1), len(mask) - mask[::-1].index(1)  # the answer's span, its end-of-turn token included
    if first < start:
        _wrong("some prompt tokens carry loss: the model would learn to write the user's question.",
               "the loss starts where the prompt (template.prompt) ends")
    if first >= end:
        _wrong("tokens after the answer's end-of-turn token carry loss.",
               "the loss covers the answer up to and including its end-of-turn token, not what the template "
               "writes after it")
    if ids[first] == eot and labels[first] == -100:
        _wrong("the end-of-turn token after the answer is masked: the model would never learn to stop.",
               "the end-of-turn token belongs to the answer's loss")
    if labels[first] == -100:
        _wrong("some answer tokens are masked (-100).", "every token of the answer carries loss")
    _wrong("inside the answer, a label is not its own token id.",
           "a label that counts is the token at that position; the model shifts by one position itself")


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


def check_lr_advice(lab, diverging_lr, advised_lr) -> bool:
    """Exercise 05: a round named "diverges" that the lab recorded as diverged, and a round named "advised" at
    the learning rate its advice gives, which learns."""
    import math

    _still_none("diverging_lr", diverging_lr)
    _still_none("advised_lr", advised_lr)
    rounds = {r.name: r for r in lab.rounds()}

    def trained(name: str, lr):
        if name not in rounds:
            raise CheckFailed(f"the lab has no round named {name!r}: train it with lab.train(..., name={name!r}).")
        if not math.isclose(rounds[name].config.learning_rate, lr, rel_tol=1e-3):
            raise CheckFailed(f"round {name!r} did not train at the learning rate you chose for it; set "
                              "learning_rate in its RoundConfig to that value.")
        return rounds[name]

    broken = trained("diverges", diverging_lr)
    if broken.status != "diverged":
        _wrong(f"round 'diverges' is {broken.status}, not diverged: at this learning rate the lab saw no NaN and "
               "no exploding loss", "where the range test stopped: it spent a few steps at each lr, a round spends "
               "all of its steps at one, and only a lr well past that point blows up")
    if not isinstance(advised_lr, int | float) or not 0 < advised_lr <= diverging_lr / 10 * (1 + 1e-9):
        _wrong("advised_lr does not follow the lab's advice for round 'diverges'",
               "the advice printed under the round's verdict: by how much it says to lower the learning rate")
    advised = trained("advised", advised_lr)
    before, after = advised.metrics.get("eval_loss_before"), advised.metrics.get("eval_loss")
    if advised.status != "succeeded" or before is None or after is None or after > 0.8 * before:
        _wrong(f"round 'advised' is {advised.status} and did not learn (its eval loss fell less than 20%)",
               "the advice says how much lower at least, not as low as you like: steps far too small barely move "
               "the weights in a short round")
    return _passed("'diverges' blew up, and following the lab's advice gave a round that learns")


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


def _weight_in(folder, name: str):
    """One weight of a saved model, read from its safetensors files without loading the model."""
    from pathlib import Path

    from ftlab.streamed import data_start, read_header, read_tensor

    for path in sorted(Path(folder).glob("*.safetensors")):
        header = read_header(path)
        if name in header:
            with open(path, "rb") as f:
                return read_tensor(f, header[name], data_start(path)).float()
    raise KeyError(f"{folder} has no weight named {name!r}")


def check_merged_weight(merged, adapter, layer: str, name: str = "merged") -> bool:
    """``merged``: the weight of ``layer`` with the adapter saved in ``adapter`` folded in (exercise 07).

    The right answer is W + (alpha/r) B A, where W is the weight the adapter trained against: the
    base's own weight, or for a 4-bit base its NF4 rounding Q(W).
    """
    from pathlib import Path

    import torch

    from ftlab import export
    from ftlab.merge import lora_pairs, nf4_round_trip

    record = export.read_record(adapter)
    pairs, scale = lora_pairs(Path(adapter))
    a, b = pairs[f"{layer}.weight"]
    original = _weight_in(export.base_folder(record["base_model"]), f"{layer}.weight")
    quantization = record.get("base_quantization")
    trained_on = nf4_round_trip(original, quantization).float() if quantization else original
    if merged is None:
        _fail(name, None, f"the merged weight of {layer}, a tensor")
    if not isinstance(merged, torch.Tensor):
        raise CheckFailed(f"{name} is a {type(merged).__name__}, but it should be a torch tensor: the weight matrix "
                          "itself.\nHint: the merged weight is a matrix the size of the layer's weight")
    got = merged.detach().float().cpu()
    if got.shape != trained_on.shape:
        turned = got.shape == trained_on.T.shape
        raise CheckFailed(f"{name} has shape {tuple(got.shape)}, not the shape of the layer's weight "
                          f"(out_features x in_features).\nHint: " + (
                              "it is transposed. Revisit the shapes: A is (r x in_features), B is (out_features x r)" if turned
                              else "revisit the shapes: A is (r x in_features), B is (out_features x r)"))

    def near(weight):
        return torch.allclose(got, weight, atol=1e-5, rtol=1e-4)

    if got.shape[0] == got.shape[1] and near((trained_on + scale * (b @ a)).T):
        raise CheckFailed(f"{name} is transposed: the layer's weight is (out_features x in_features).\nHint: revisit "
                          "the shapes: A is (r x in_features), B is (out_features x r)")
    if near(trained_on) or near(original):
        raise CheckFailed(f"{name} equals the base weight: the adapter's update is not in it.\nHint: revisit what "
                          "merging computes: the LoRA path's product, scaled, is added to W")
    if quantization and near(original + scale * (b @ a)):
        raise CheckFailed(f"{name} starts from the original weight W, but this adapter was trained on a 4-bit base: "
                          "every weight it saw was W rounded to NF4.\nHint: revisit 'why a 4-bit base rounds': start "
                          "from the weight the 4-bit layer computes with (dequantize it)")
    r = a.shape[0]
    for wrong in {1.0, 1 / scale, scale * r, scale / r} - {scale}:
        if near(trained_on + wrong * (b @ a)) or near(original + wrong * (b @ a)):
            raise CheckFailed(f"{name} has the update B A, but scaled wrongly.\nHint: revisit the scale: LoRA "
                              "multiplies its path by alpha / r (both are in adapter_config.json)")
    if not near(trained_on + scale * (b @ a)):
        gap = (got - trained_on - scale * (b @ a)).abs().max().item()
        raise CheckFailed(f"{name} is off by up to {gap:.1e} somewhere.\nHint: revisit what merging computes, "
                          "W' = W + (alpha/r) B A, with A and B of this very layer")
    where = "its 4-bit rounding Q(W)" if quantization else "W"
    return _passed(f"{name} = {where} + (alpha/r) B A for {layer}")


# ------------------------------------------------------------------------------- exercise 04: beyond noise
def check_repeats(lab, baseline, changed, needed: int = 3) -> bool:
    """Exercise 04: rounds ``baseline`` and ``changed`` of ``lab`` each have ``needed`` successful repeats."""
    for id in (baseline, changed):
        round_ = lab.round(id)
        group = round_.record.get("repeat_of") or round_.id
        done = [r for r in lab.rounds() if group in (r.id, r.record.get("repeat_of")) and r.status == "succeeded"]
        if len(done) < needed:
            raise CheckFailed(f"round {round_.id} ({round_.name}) has {len(done)} successful run(s); a spread needs "
                              f"at least {needed}.\nHint: revisit why one clone is not enough (chapter 04, section 2): "
                              f"lab.rerun({round_.id}, model=model, tokenizer=tokenizer) trains it again with another seed.")
    return _passed(f"{needed} or more runs of each round: now their spread means something")


def check_effect_by_hand(lab, baseline, changed, difference, standard_error, beyond_noise) -> bool:
    """Exercise 04: the difference of mean eval losses, its pooled standard error, and the 95% decision."""
    for name, value in (("difference", difference), ("standard_error", standard_error)):
        if value is None:
            raise CheckFailed(f"{name} is still None: fill in the TODO cell above.")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise CheckFailed(f"{name} should be a number (a float), not a {type(value).__name__}.")
    try:
        found = lab.effect(baseline, changed)
    except ValueError as error:
        raise CheckFailed(f"{error}.\nHint: section 1 first: three runs of each round.") from None
    if abs(abs(difference) - abs(found.difference)) <= 1e-3 * abs(found.difference) and \
            (difference > 0) != (found.difference > 0):
        raise CheckFailed("difference has the right size but the wrong sign.\nHint: take the changed round's mean "
                          "minus the baseline's, so that a positive number means a higher eval loss.")
    if abs(difference - found.difference) > 1e-3 * max(abs(found.difference), 1e-9):
        raise CheckFailed("difference is not the difference of the two means.\nHint: average the eval loss over *all* "
                          "the runs of each round (the first one and its repeats), then subtract.")
    if abs(standard_error - found.standard_error) > 1e-3 * found.standard_error:
        way = "too large" if standard_error > found.standard_error else "too small"
        raise CheckFailed(f"standard_error is {way}.\nHint: revisit the pooled spread: the sample standard "
                          "deviation of each set (divide by n - 1), pooled as sqrt(((na-1) sa² + (nb-1) sb²) / "
                          "(na + nb - 2)), times sqrt(1/na + 1/nb).")
    if not isinstance(beyond_noise, bool):
        raise CheckFailed("beyond_noise should be True or False.")
    if beyond_noise != found.beyond_noise:
        raise CheckFailed("beyond_noise is not what the numbers say.\nHint: compare |difference| / standard_error with "
                          "the 95% critical value of Student's t for na + nb - 2 degrees of freedom (chapter 04).")
    return _passed("difference, standard error and decision agree with lab.effect")


def check_failure_reading(lab, name, failure_kind, next_learning_rate) -> bool:
    """Exercise 04: the class of failure of round ``name``, and a learning rate that follows the lab's advice."""
    round_ = lab.round(name)
    if round_.status == "succeeded":
        raise CheckFailed(f"round {name!r} succeeded: train it at a learning rate high enough to diverge.")
    kind = (round_.failure or {}).get("kind")
    if failure_kind is None or next_learning_rate is None:
        raise CheckFailed("failure_kind or next_learning_rate is still None: fill in the TODO cell above.")
    if failure_kind != kind:
        raise CheckFailed("failure_kind is not the class of failure the lab recorded for this round.\nHint: read "
                          f"the round's verdict (lab.round({name!r}).verdict()): the class is in brackets.")
    lr = round_.config.learning_rate
    if not isinstance(next_learning_rate, int | float) or not 0 < next_learning_rate <= lr / 10 * (1 + 1e-9):
        raise CheckFailed("next_learning_rate does not follow the advice.\nHint: read the advice under the verdict: "
                          "by how much should the learning rate change after a divergence?")
    return _passed(f"a {kind} round, and a learning rate that follows the lab's advice")


# ------------------------------------------------------------------------- exercise 06: the chat mask
def _turn_labels_problem(turn: int, role: str, carried: list[bool], expected: list[bool]) -> tuple[str, str] | None:
    """What is wrong with one turn's labels and the idea to revisit (never which positions are right), or None."""
    if role != "assistant":
        if any(carried):
            return (f"turn {turn} ({role}) has labels on {sum(carried)} of its tokens: the model would learn to write "
                    f"the {role}'s words, which it only reads.", "the mask of chapter 06: only the assistant's turns "
                    "carry loss; system and user turns are context")
        return None
    if not any(carried):
        return (f"turn {turn} (assistant) has no labels at all.", "every assistant turn of a conversation trains, "
                "not only the last one")
    if not carried[max(i for i, e in enumerate(expected) if e)]:  # the last loss token closes the answer
        return (f"the end-of-turn token that closes turn {turn} has label -100: the model would never learn to stop, "
                "and a model that does not stop soon repeats itself.", "what the end-of-turn token is for")
    if any(c and not e for c, e in zip(carried, expected, strict=True)):
        return (f"turn {turn} (assistant) has labels before its answer starts, on the role header the template "
                "writes at inference.", "the answer starts where the turn's inference prompt (template.prompt) ends")
    if carried != expected:
        return (f"turn {turn} (assistant) leaves part of its answer without labels.",
                "the labels run from the end of the turn's inference prompt to its end-of-turn token, inclusive")
    return None


def check_chat_labels(template, messages, labels) -> bool:
    """Exercise 06: ``labels`` for ``template.training_text(messages)``: the token id where it carries loss, else -100."""
    from ftlab.masks import loss_mask

    _still_none("labels", labels)
    labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    tokens = loss_mask(template, messages).tokens
    if len(labels) != len(tokens):
        _wrong(f"labels has {len(labels)} values but the training text has {len(tokens)} tokens.",
               "one label per token of template.training_text(messages), tokenized without adding special tokens "
               "(the template already wrote them)")
    odd = [t.position for t, label in zip(tokens, labels, strict=True) if label not in (-100, t.id)]
    if odd:
        _wrong(f"{len(odd)} labels are neither -100 nor the token at their position.", "a label is the token itself "
               "where it carries loss (the model shifts by one position itself) and -100 elsewhere")
    for turn in sorted({t.turn for t in tokens}):
        mine = [t for t in tokens if t.turn == turn]
        problem = _turn_labels_problem(turn, mine[0].role, [labels[t.position] != -100 for t in mine],
                                       [t.loss for t in mine])
        if problem:
            _wrong(*problem)
    answers = sum(m["role"] == "assistant" for m in messages)
    return _passed(f"your labels are the trainer's: loss on all {answers} assistant turns, each with its end-of-turn "
                   "token, and on nothing else")
