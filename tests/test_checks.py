"""Exercise checks say what is wrong and what was expected, and accept right answers."""


import pytest

from ftlab.course import checks
from ftlab.course.checks import CheckFailed


def test_lora_config_check_names_the_wrong_field():
    from peft import LoraConfig

    with pytest.raises(CheckFailed, match=r"(?s)lora_config.r is 8: not the rank the task asks for.*rank of the update"):
        checks.check_lora_config(LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                  "o_proj"], task_type="CAUSAL_LM"))
    with pytest.raises(CheckFailed, match=r"leaves out 2 of the layers the task names"):
        checks.check_lora_config(LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))


def test_trainable_share_check_rejects_a_percentage_and_a_wrong_count(tiny):
    from peft import LoraConfig, get_peft_model

    model, _ = tiny
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    assert checks.check_trainable_share(peft_model, trainable / total)
    with pytest.raises(CheckFailed, match="looks like a percentage"):
        checks.check_trainable_share(peft_model, 100 * trainable / total)
    with pytest.raises(CheckFailed, match="is not trainable / total"):
        checks.check_trainable_share(peft_model, trainable / (total - 1000))
    with pytest.raises(CheckFailed, match="the adapters are parameters of peft_model too"):
        checks.check_trainable_share(peft_model, trainable / (total - trainable))
    with pytest.raises(CheckFailed, match="more than 1"):
        checks.check_trainable_share(peft_model, total / trainable)
    with pytest.raises(CheckFailed, match="function of") as error:
        checks.check_lora_param_count(peft_model, trainable + 1)  # a number: part 3 wants the formula
    assert f"{trainable:,}" not in str(error.value)  # a check never gives the answer away


def test_the_naive_lora_count_is_told_about_grouped_query_attention(tiny):
    from peft import LoraConfig, get_peft_model

    model, _ = tiny
    cfg = model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # GQA, as in TinyLlama
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                  task_type="CAUSAL_LM"))

    def naive(cfg, r):
        return cfg.num_hidden_layers * 4 * r * (2 * cfg.hidden_size)

    def aware(cfg, r):
        kv = cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
        return cfg.num_hidden_layers * r * (2 * 2 * cfg.hidden_size + 2 * (cfg.hidden_size + kv))

    assert naive(cfg, 16) != aware(cfg, 16)
    with pytest.raises(CheckFailed, match="grouped-query attention"):
        checks.check_lora_param_count(peft_model, naive)
    assert checks.check_lora_param_count(peft_model, aware)


def test_em_f1_check_calls_the_learners_functions_on_pairs_it_draws():
    from ftlab.evaluation import metrics

    def exact_match(prediction, reference):
        return metrics.exact_match([prediction], [reference])

    def f1(prediction, reference):
        return metrics.f1([prediction], [reference])

    def f1_as_sets(prediction, reference):  # shared tokens counted once: wrong where a word repeats
        p = set(metrics.normalize_answer(prediction).split())
        r = set(metrics.normalize_answer(reference).split())
        shared = len(p & r)
        return 0.0 if not shared else 2 * shared / (len(p) + len(r))

    assert checks.check_em_f1_by_hand(exact_match, f1)
    with pytest.raises(CheckFailed, match=r"(?s)f1 disagrees.*each as many times as it appears") as failed:
        checks.check_em_f1_by_hand(exact_match, f1_as_sets)
    assert "should be" not in str(failed.value)
    with pytest.raises(CheckFailed, match=r"(?s)exact_match disagrees.*normalise both first"):
        checks.check_em_f1_by_hand(lambda p, r: float(p == r), f1)
    with pytest.raises(CheckFailed, match="still None"):
        checks.check_em_f1_by_hand(None, None)


def test_cjk_tokenizer_check_rejects_the_default_behaviour_without_printing_the_tokens():
    class Words:
        def tokenize(self, text):
            return text.split()

    with pytest.raises(CheckFailed, match="1 tokens for 6 characters") as raised:
        checks.check_cjk_rouge_tokenizer(Words())
    assert "'今', '天'" not in str(raised.value)


def test_rows_fixed_check_refuses_dropped_rows_and_remaining_problems():
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    bad = {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}
    with pytest.raises(CheckFailed, match="don't drop them"):
        checks.check_rows_fixed([good], [good, bad])
    with pytest.raises(CheckFailed, match="unknown role 'bot'"):
        checks.check_rows_fixed([good, bad], [good, bad])
    assert checks.check_rows_fixed([good, good], [good, bad])
    other = {"messages": [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    with pytest.raises(CheckFailed, match="not these rows repaired"):  # valid, but not what the author wrote
        checks.check_rows_fixed([good, other], [good, bad])


def test_dedup_balance_check_counts_each_category():
    import ftlab

    raw = ftlab.data.arithmetic(300, seed=1, duplicates=0.3)
    with pytest.raises(CheckFailed, match="duplicate rows"):
        checks.check_dedup_balance(raw, raw, per_category=1000)
    unique, _ = ftlab.data.dedup(raw, progress=False)
    with pytest.raises(CheckFailed, match=r"more '\w+' rows than it may"):
        checks.check_dedup_balance(unique, raw, per_category=10)
    capped, _ = ftlab.data.balance(unique, per_category=5, seed=0)
    with pytest.raises(CheckFailed, match=r"fewer '\w+' rows than it could keep"):
        checks.check_dedup_balance(capped, raw, per_category=10)
    balanced, _ = ftlab.data.balance(unique, per_category=10, seed=0)
    assert checks.check_dedup_balance(balanced, raw, per_category=10)


def _prompt_by_cut(template, messages):
    text = template.training_text(messages)
    return text[:text.rindex(messages[-1]["content"])]


def test_prompt_check_calls_the_learners_cut_on_rows_it_draws(tiny):
    import ftlab

    template = ftlab.Template.chat(tiny[1])
    assert checks.check_prompt_matches(template, _prompt_by_cut)
    with pytest.raises(CheckFailed, match="offers only training_text"):  # the library's call is not the proof
        checks.check_prompt_matches(template, lambda template, messages: template.prompt(messages))


def test_tinyllama_lora_count_check_names_the_idea_missed_without_the_answer():
    assert checks.check_tinyllama_lora_counts(1_126_400, 12_615_680)
    no_gqa = 8 * (2 * 2048 + 2 * 2048) * 22
    with pytest.raises(CheckFailed, match="grouped-query attention") as failed:
        checks.check_tinyllama_lora_counts(no_gqa, 12_615_680)
    assert "1,126,400" not in str(failed.value) and "1126400" not in str(failed.value)
    with pytest.raises(CheckFailed, match="num_hidden_layers"):
        checks.check_tinyllama_lora_counts(1_126_400 // 22, 12_615_680)
    with pytest.raises(CheckFailed, match="gate_proj, up_proj and down_proj") as failed:
        checks.check_tinyllama_lora_counts(1_126_400, 16 * (2 * 4096 + 2 * 2304) * 22)
    assert "12,615,680" not in str(failed.value)
    with pytest.raises(CheckFailed, match="B @ A"):
        checks.check_tinyllama_lora_counts(8 * (2048 + 2048) * 22, 12_615_680)
    with pytest.raises(CheckFailed, match="still None"):
        checks.check_tinyllama_lora_counts(None, None)


def test_t4_prediction_check():
    configs = [dict(batch_size=16, max_length=1024, gradient_checkpointing=False, rows=2000),
               dict(batch_size=2, max_length=1024, gradient_checkpointing=False, rows=2000),
               dict(batch_size=16, max_length=1024, gradient_checkpointing=True, quantization="4bit", rows=2000)]
    assert checks.check_t4_predictions(configs, [False, True, True], 1)
    for fits, fastest in (([True, True, True], 1), ([False, True, True], 0), ([False, True, True], 2)):
        with pytest.raises(CheckFailed, match="(?s)not both right.*activations.*checkpointing") as failed:
            checks.check_t4_predictions(configs, fits, fastest)
        assert "fits[" not in str(failed.value) and "configuration 0" not in str(failed.value)


def test_the_tinyllama_figures_quoted_in_the_course():
    """Exercise 00 and notebook 00 quote TinyLlama's LoRA share (~0.4%) and the naive count's overestimate (28%)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftlab.course.checks.lora import _naive_lora_count

    config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4)  # TinyLlama-1.1B's config.json
    with torch.device("meta"):
        model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                          "o_proj"], task_type="CAUSAL_LM"))
    trainable, total = model.get_nb_trainable_parameters()
    assert round(trainable / 1e6, 1) == 4.5 and round(100 * trainable / total, 1) == 0.4
    assert round(100 * (_naive_lora_count(model) / trainable - 1)) == 28


def test_a_failing_check_shows_its_message_without_a_traceback_through_ftlab(capsys):
    """In IPython (Jupyter, Colab, Kaggle) a failed check prints its message only; it is still a failure."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    result = shell.run_cell("from ftlab import checks\nchecks.check_tinyllama_lora_counts(1_126_400 // 22, 1)")
    shown = capsys.readouterr().out
    assert isinstance(result.error_in_exec, CheckFailed) and isinstance(result.error_in_exec, AssertionError)
    assert "num_hidden_layers" in shown and "✗" in shown  # the message, marked as a failure
    assert "ftlab/checks" not in shown and "Traceback" not in shown and "raise CheckFailed" not in shown
    shell.run_cell("raise ValueError('not a check')")  # other errors keep their full traceback
    assert "Traceback" in capsys.readouterr().out


def test_prompt_check_names_a_cut_that_runs_into_the_answer(tiny):
    import ftlab

    template = ftlab.Template.chat(tiny[1])

    def first_mention(template, messages):  # the answer's text found where the question says it
        text = template.training_text(messages)
        return text[:text.index(messages[-1]["content"])]

    def with_the_answer(template, messages):
        return _prompt_by_cut(template, messages) + messages[-1]["content"]

    with pytest.raises(CheckFailed, match="text the model is given at inference"):
        checks.check_prompt_matches(template, first_mention)
    with pytest.raises(CheckFailed, match="runs into the answer"):
        checks.check_prompt_matches(template, with_the_answer)


ROW = [{"role": "user", "content": "Double 4."}, {"role": "assistant", "content": "8"}]


def _labels(tiny):
    import ftlab

    template = ftlab.Template.chat(tiny[1])
    ids, mask = template.encode(ROW)
    return template, ids, mask, [t if m else -100 for t, m in zip(ids, mask, strict=True)]


def test_label_mask_check_accepts_ftlabs_mask_and_names_each_mistake(tiny):
    template, ids, mask, right = _labels(tiny)
    assert checks.check_label_mask(template, ROW, ids, right)
    start, end = mask.index(1), len(mask) - mask[::-1].index(1)
    assert end < len(ids)  # the tiny model's template writes a newline after the end-of-turn token
    cases = {
        "prompt tokens carry loss": list(ids),  # no mask at all
        "after the answer's end-of-turn": right[:end] + ids[end:],
        "never learn to stop": right[:end - 1] + [-100] + right[end:],
        "some answer tokens are masked": right[:start] + [-100] + right[start + 1:],
        "with 0": [t if m else 0 for t, m in zip(ids, mask, strict=True)],
        "one entry per token": right[:-1],
        "not its own token id": right[:start] + [right[start] + 1] + right[start + 1:],
    }
    for words, labels in cases.items():
        with pytest.raises(CheckFailed, match=words) as failed:
            checks.check_label_mask(template, ROW, ids, labels)
        assert str(right) not in str(failed.value) and "Revisit" in str(failed.value)
    with pytest.raises(CheckFailed, match="still None"):
        checks.check_label_mask(template, ROW, ids, None)


def chat_label_functions():
    """Exercise 06's answer, the mistakes a learner makes, and the cheats the check must refuse, as functions."""
    def by_hand(template, tokenizer, conversation, shift=0, keep=lambda turn, message: True, closing=True):
        text = template.training_text(conversation)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        labels = [-100] * len(ids)
        for turn, message in enumerate(conversation):
            if message["role"] != "assistant" or not keep(turn, conversation):
                continue
            prompt = template.prompt(conversation[:turn])
            end = text.index(template.end_of_turn, len(prompt)) + (len(template.end_of_turn) if closing else 0)
            start, stop = (len(tokenizer(part, add_special_tokens=False)["input_ids"]) for part in (prompt, text[:end]))
            labels[start - shift:stop] = ids[start - shift:stop]
        return labels

    def everything(template, tokenizer, conversation):
        return tokenizer(template.training_text(conversation), add_special_tokens=False)["input_ids"]

    def library_mask(template, tokenizer, conversation):  # the cheat: ask ftlab's mask for the answer
        ids, mask = template.encode(conversation)
        return [i if m else -100 for i, m in zip(ids, mask, strict=True)]

    return by_hand, {
        "everything": everything, "library mask": library_mask,
        "last answer only": lambda t, k, c: by_hand(t, k, c, keep=lambda turn, conv: turn == len(conv) - 1),
        "no end of turn": lambda t, k, c: by_hand(t, k, c, closing=False),
        "from the header": lambda t, k, c: by_hand(t, k, c, shift=2),
        "short": lambda t, k, c: by_hand(t, k, c)[:-1],
        "fixed answer": lambda t, k, c: [-100] * 40,
    }


def test_the_chat_labels_check_calls_the_function_on_fresh_conversations_and_grades_it_as_a_whole(tiny):
    import ftlab

    template = ftlab.Template.chat(tiny[1])
    right, mistakes = chat_label_functions()
    assert checks.check_chat_labels(template, tiny[1], right)
    for name, wrong in mistakes.items():
        with pytest.raises(CheckFailed) as failed:
            checks.check_chat_labels(template, tiny[1], wrong)
        message = str(failed.value)
        assert "Revisit" in message or "raised" in message, (name, message)
        assert "turn 1" not in message and "turn 3" not in message and "position" not in message, (name, message)
    with pytest.raises(CheckFailed, match="offers only prompt, training_text and end_of_turn"):
        checks.check_chat_labels(template, tiny[1], mistakes["library mask"])
    with pytest.raises(CheckFailed, match="still None"):
        checks.check_chat_labels(template, tiny[1], None)
