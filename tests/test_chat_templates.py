"""Every model in its own chat format: real templates (tests/fixtures/chat_templates) keep their format,
the loss covers exactly the assistant's tokens, and the inference prompt is the training text up to the answer."""

import json
from pathlib import Path

import pytest

from ftlab.templates.template import CHAT_TEMPLATE, Template, TemplateError

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
ANSWERS = ["Paris is the capital.", "It has about 2 million people.", "Good bye, and enjoy the trip!"]
CHAT = [message for question, answer in zip(["What is the capital of France?", "How many people live there?",
                                             "Thank you!"], ANSWERS, strict=True)
        for message in ({"role": "user", "content": question}, {"role": "assistant", "content": answer})]
# rows of one, two and three answers, with and without a system prompt: what format must batch like encode
ROWS = [CHAT, [{"role": "system", "content": "Answer briefly."}, *CHAT], CHAT[:2], CHAT[2:4], CHAT[:4]]


def fixture_tokenizer(tiny_path, name):
    """ftlab's byte-level tokenizer (it encodes any text) with the model's special tokens and real chat template."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    spec = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    named = {key: spec[key] for key in ("bos_token", "eos_token") if spec[key]}
    tokenizer.add_special_tokens(named)
    tokenizer.add_tokens(spec["special_tokens"], special_tokens=True)
    if spec["bos_token"] is None:
        tokenizer.bos_token = None
    if spec["tokenizer_adds_bos"]:  # as Llama's and Mistral's tokenizers do
        tokenizer._tokenizer.post_processor = TemplateProcessing(
            single=f"{spec['bos_token']} $A", special_tokens=[(spec["bos_token"], tokenizer.bos_token_id)])
    tokenizer.chat_template = spec["chat_template"]
    return tokenizer, spec


@pytest.mark.parametrize("name", NAMES)
def test_the_loss_covers_exactly_every_answer_and_its_end_of_turn_token(tiny_path, name):
    tokenizer, spec = fixture_tokenizer(tiny_path, name)
    template = Template.chat(tokenizer)
    assert template.chat_template == spec["chat_template"]  # the model's own format, not TinyLlama's
    assert template.end_of_turn == spec["end_of_turn"]
    ids, mask = template.encode(CHAT)
    assert loss_texts(tokenizer, ids, mask) == [answer + spec["end_of_turn"] for answer in ANSWERS]
    # BOS up front where the template writes it or the tokenizer adds it to every text, and never twice
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False)
    expects_bos = bool(spec["bos_token"]) and (rendered.startswith(spec["bos_token"]) or spec["tokenizer_adds_bos"])
    assert (ids[0] == tokenizer.bos_token_id) == expects_bos and ids[1] != tokenizer.bos_token_id


@pytest.mark.parametrize("name", NAMES)
def test_the_inference_prompt_is_the_training_text_up_to_each_answer(tiny_path, name):
    tokenizer, spec = fixture_tokenizer(tiny_path, name)
    template = Template.chat(tokenizer)
    text = template.training_text(CHAT)
    assert text == template.bos + tokenizer.apply_chat_template(CHAT, tokenize=False)
    ids, mask = template.encode(CHAT)
    for turn in (1, 3, 5):
        prompt = template.prompt(CHAT[:turn])
        assert text.startswith(prompt) and text[len(prompt):].startswith(CHAT[turn]["content"])
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert ids[:len(prompt_ids)] == prompt_ids and mask[len(prompt_ids) - 1] == 0 and mask[len(prompt_ids)] == 1
    assert template.default_system_prompt == spec["default_system_prompt"]
    if spec["default_system_prompt"]:  # shown, not hidden
        assert spec["default_system_prompt"] in template.prompt("Hi")


def test_ftlabs_mask_agrees_with_transformers_generation_markers(tiny):
    _, tokenizer = tiny
    assert tokenizer.chat_template == CHAT_TEMPLATE
    encoded = tokenizer.apply_chat_template(CHAT, return_assistant_tokens_mask=True, return_dict=True)
    assert Template.chat(tokenizer).encode(CHAT) == (encoded["input_ids"], encoded["assistant_masks"])


def test_a_tokenizer_without_template_gets_ftlabs_default_said_aloud(tiny_path, capsys):
    tokenizer, _ = fixture_tokenizer(tiny_path, "tinyllama")
    tokenizer.chat_template = None
    template = Template.chat(tokenizer)
    assert template.chat_template == CHAT_TEMPLATE
    assert "no chat template of its own" in capsys.readouterr().out


def test_a_template_whose_prompt_is_not_the_start_of_the_training_text_is_refused(tiny_path):
    tokenizer, _ = fixture_tokenizer(tiny_path, "smollm2")
    # the generation prompt says "bot" where the training text says "assistant"
    tokenizer.chat_template = tokenizer.chat_template.replace("'<|im_start|>assistant\n'", "'<|im_start|>bot\n'")
    with pytest.raises(TemplateError, match=r"not write the prompt.*Template.chat\(tokenizer, chat_template="):
        Template.chat(tokenizer)


def test_a_template_without_end_of_turn_token_is_refused(tiny_path):
    tokenizer, _ = fixture_tokenizer(tiny_path, "tinyllama")
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    with pytest.raises(TemplateError, match="no end-of-turn token"):
        Template.chat(tokenizer)


@pytest.mark.parametrize("name", ["tinyllama", "smollm2"])
def test_token_by_token_the_loss_is_on_each_assistant_turn_and_its_end_of_turn_only(tiny_path, name):
    from ftlab.templates.masks import loss_mask

    tokenizer, spec = fixture_tokenizer(tiny_path, name)
    template = Template.chat(tokenizer)
    conversation = [{"role": "system", "content": "Answer briefly."}, *CHAT]
    shown = loss_mask(template, conversation)
    assert [t.id for t in shown.tokens] == template.encode(conversation)[0]  # the trainer's ids and mask
    assert [t.loss for t in shown.tokens] == [bool(m) for m in template.encode(conversation)[1]]
    turns = shown.turns()
    assert [(turn, role) for turn, role, _ in turns] == [(i + 1, m["role"]) for i, m in enumerate(conversation)]
    for (_, role, tokens), message in zip(turns, conversation, strict=True):
        loss = [t.id for t in tokens if t.loss]
        if role == "assistant":  # the answer and its end-of-turn token, after a header that carries none
            assert tokenizer.decode(loss) == message["content"] + spec["end_of_turn"]
            assert not tokens[0].loss and message["content"] not in tokenizer.decode([t.id for t in tokens
                                                                                      if not t.loss])
        else:  # system and user turns are context only, and each holds its own text
            assert loss == [] and message["content"] in tokenizer.decode([t.id for t in tokens])
    assert shown.loss_by_role()["user"][0] == shown.loss_by_role()["system"][0] == 0
    assert str(shown).rsplit("\n", 1)[0].count("⟦") == shown.loss_tokens and "<span" in shown._repr_html_()


def loss_texts(tokenizer, ids, mask) -> list[str]:
    """The decoded runs of tokens that carry loss."""
    runs, run = [], []
    for token, carries in zip(ids, mask, strict=True):
        if carries:
            run.append(token)
        elif run:
            runs.append(run)
            run = []
    return [tokenizer.decode(r) for r in runs + ([run] if run else [])]


def renders(tokenizer, messages) -> bool:
    from jinja2.exceptions import TemplateError as RefusedByTemplate

    try:
        tokenizer.apply_chat_template(messages, tokenize=False)
    except RefusedByTemplate:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_format_gives_the_trainer_encodes_ids_and_mask_row_by_row(tiny_path, name):
    from datasets import Dataset

    tokenizer, spec = fixture_tokenizer(tiny_path, name)
    template = Template.chat(tokenizer)
    conversations = [m for m in ROWS if m[0]["role"] != "system" or renders(tokenizer, m)]  # Gemma: no system role
    rows = Dataset.from_list([{"messages": messages} for messages in conversations])
    for max_length in (None, 24):
        formatted = template.format(rows, max_length=max_length)
        assert [(row["input_ids"], row["assistant_masks"]) for row in formatted] == \
            [template.encode(messages, max_length) for messages in conversations]
    for row, messages in zip(template.format(rows), conversations, strict=True):  # every answer, its end of turn, nothing else
        assert loss_texts(tokenizer, row["input_ids"], row["assistant_masks"]) == \
            [m["content"] + spec["end_of_turn"] for m in messages if m["role"] == "assistant"]
    everything = template.format(rows, loss_on="everything")
    assert all(row["assistant_masks"] == [1] * len(row["input_ids"]) for row in everything)


def test_format_refuses_a_prompt_whose_end_the_tokenizer_merges_with_the_answer(tiny):
    from datasets import Dataset

    _, tokenizer = tiny
    # the assistant's header ends in "th": before an answer starting "e cat", the byte-level tokenizer writes "the"
    template = Template.chat(tokenizer, chat_template=CHAT_TEMPLATE.replace("'<|assistant|>\\n'", "'<|assistant|>\\nth'"))
    merged = [{"role": "user", "content": "Who sat?"}, {"role": "assistant", "content": "e cat sat."}]
    rows = Dataset.from_list([{"messages": CHAT}, {"messages": merged}])
    with pytest.raises(TemplateError, match=r"row 2: the tokenizer merges the end of the prompt .*nth"):
        template.format(rows)
    assert template.format(rows.select([0]))["input_ids"][0] == template.encode(CHAT)[0]  # the other rows are fine
    from ftlab.config import RoundConfig
    from ftlab.round.train import training_rows

    with pytest.raises(TemplateError, match=r"^eval data, row 2: the tokenizer merges"):  # a round names the split too
        training_rows(template, rows, RoundConfig.preset("cpu-tiny"), "eval")


def test_a_conversation_the_chat_template_refuses_is_named_by_its_row(tiny_path):
    from datasets import Dataset

    tokenizer, _ = fixture_tokenizer(tiny_path, "mistral")  # Mistral's template raises unless roles alternate
    turns = [{"role": "user", "content": "Hi."}, {"role": "user", "content": "Still there?"},
             {"role": "assistant", "content": "Yes."}]
    rows = Dataset.from_list([{"messages": CHAT}, {"messages": CHAT}, {"messages": turns}])
    with pytest.raises(TemplateError, match=r"^row 3: this chat template refuses the conversation \(.*alternate.*its roles"):
        Template.chat(tokenizer).format(rows)
