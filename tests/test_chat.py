"""Multi-turn chat: the course's conversations, bad conversations named by turn, a chat that keeps its history
and streams, and decoding settings compared on repetition and on the answers that must stay right."""

import json
import re
import warnings

import pytest

import ftlab
from ftlab.data import DataFormatError, leakage, load, validate
from ftlab.data.course_sets.dialogues import dialogues, last_answers
from ftlab.evaluation.chat import Chat, ChatError, compare_decoding
from ftlab.evaluation.generation import repeated_share


def test_the_course_conversations_are_unique_and_the_eval_side_shares_no_name_with_training():
    train, evaluation = dialogues(300, eval_size=24, seed=3)
    assert (len(train), len(evaluation)) == (300, 24)
    texts = [json.dumps(row["messages"]) for row in train + evaluation]
    assert len(set(texts)) == len(texts)
    names = lambda rows: {row["messages"][-1]["content"].split()[-1] for row in rows}  # noqa: E731
    assert not names(train) & names(evaluation)
    assert leakage(train, evaluation) == [] and leakage(train, evaluation, by="conversation") == []
    assert validate(train + evaluation) == []  # every conversation is one ftlab trains on as it is
    prompts, references = last_answers(evaluation)
    for prompt, reference in zip(prompts, references, strict=True):  # the name asked for is in the first turn
        assert reference.split()[-1].rstrip(".") in prompt[-4]["content"]
    assert dialogues(300, eval_size=24, seed=3) == (train, evaluation)  # deterministic


def test_a_bad_conversation_is_named_by_file_row_and_turn_and_the_good_ones_are_kept_whole(tmp_path):
    train, _ = dialogues(3, eval_size=1, seed=0)
    two_answers = json.loads(json.dumps(train[1]))
    two_answers["messages"].insert(-1, {"role": "assistant", "content": "Let me think."})
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [train[0], two_answers, train[2]]) + "\n")
    (finding,) = validate(path)
    turn = len(two_answers["messages"])  # the last turn (1-based) is the second of the two answers
    assert (finding.file, finding.row, finding.field) == (str(path), 2, f"messages[{turn - 1}]")
    assert f"turns {turn - 1} and {turn} are both the assistant's" in finding.message and "merge" in finding.message
    with pytest.raises(DataFormatError, match=r"chats.jsonl, row 2, field 'messages\["):
        load(path, quiet=True)
    kept = load(path, strict=False, quiet=True)
    assert kept["messages"] == [train[0]["messages"], train[2]["messages"]]  # every turn of the good rows


def test_a_chat_keeps_its_history_in_the_template_and_streams_what_it_returns(tiny):
    model, tokenizer = tiny
    chat = Chat(model, tokenizer, system="Be brief.", preset="eval", max_new_tokens=24)
    pieces = []
    first = chat.ask("Say hello to Anna.", on_text=pieces.append)
    assert "".join(pieces).strip() == first.text and pieces  # streamed piece by piece, nothing else
    asked = []
    original = chat.template.prompt
    chat.template.prompt = lambda turns: asked.append(list(turns)) or original(turns)
    second = chat.ask("Double 4.", stream=False)
    assert asked[0] == chat.history[:-1]  # the prompt is the whole history, through the template
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "user", "assistant"]
    assert chat.history[2]["content"] == first.text and chat.history[4]["content"] == second.text
    assert first.stopped and first.new_tokens < 24  # stopped at the end-of-turn token, not at the limit
    assert "</s>" not in first.text and first.repeated == repeated_share(first.text)
    chat.reset()
    assert chat.history == [{"role": "system", "content": "Be brief."}]


def test_a_chat_whose_answer_fails_keeps_the_history_it_had(tiny):
    model, tokenizer = tiny
    chat = Chat(model, tokenizer, preset="eval", max_new_tokens=8)
    chat.ask("Double 4.", stream=False)
    before = list(chat.history)
    with pytest.raises(ValueError, match="unknown decoding preset|not_a_setting|model_kwargs"):
        chat.ask("Double 5.", stream=False, not_a_setting=1)
    assert chat.history == before
    with pytest.raises(ValueError, match="non-empty text"):
        chat.ask("  ")


def test_a_turn_the_template_cannot_write_is_named_before_anything_is_generated(tiny):
    model, tokenizer = tiny
    chat = Chat(model, tokenizer, preset="eval", max_new_tokens=8)
    chat.ask("Double 4.", stream=False)
    kept = list(chat.history)
    for number, turn, named in ((1, {"role": "robot", "content": "Beep."}, r"chat\.history\[1\]: role 'robot' is not one "
                                 r"of system, user, assistant .*chat\.reset\(\)"),
                                (1, {"role": "assistant", "content": None}, r"chat\.history\[1\] \(assistant\): its "
                                 r"content is None, not text"),
                                (0, "Double 4.", r"chat\.history\[0\] is 'Double 4\.': each turn is \{'role'")):
        chat.history = [*kept[:number], turn, *kept[number + 1:]]
        with pytest.raises(ChatError, match=named):
            chat.ask("Double 5.", stream=False)
    chat.history = kept
    assert chat.ask("Double 5.", stream=False).text is not None and len(chat.history) == 4


def test_a_prompt_longer_than_the_model_reads_is_refused_and_old_turns_are_forgotten_with_a_warning(tiny):
    """The tiny model reads 256 positions: a 60,000-token message used to be answered (after 46 s) from garbage."""
    import time

    model, tokenizer = tiny
    positions = model.config.max_position_embeddings
    chat = Chat(model, tokenizer, system="Be brief.", preset="eval", max_new_tokens=16)
    started = time.perf_counter()
    with pytest.raises(ChatError, match=rf"the message is [\d,]+ tokens as the model reads it \(with the system turn\), "
                                        rf"and this model reads {positions} positions at most .*16 of them kept for the "
                                        rf"answer \(max_new_tokens\): it has room for a prompt of {positions - 16} tokens"):
        chat.ask("hello " * 60_000, stream=False)
    assert time.perf_counter() - started < 20 and chat.history == [{"role": "system", "content": "Be brief."}]
    long = "Tell me about the weather, the sea and the hills in one long sentence. " * 4
    forgot = []
    for _ in range(6):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chat.ask(long, stream=False)
        forgot += [str(w.message) for w in caught]
        prompt = tokenizer(chat.template.prompt(chat.history[:-1]), add_special_tokens=False)["input_ids"]
        assert len(prompt) + 16 <= positions  # every answer was asked from a prompt that fit
    assert forgot and re.match(rf"the conversation no longer fits the model's {positions} positions beside a "
                               r"16-token answer: the chat forgot its \d+ oldest turn\(s\) \(the system turn is kept\)",
                               forgot[0]), forgot
    assert chat.history[0]["role"] == "system" and chat.history[1]["role"] == "user"


def test_compare_decoding_measures_each_setting_and_keeps_the_right_answers(tiny, capsys):
    model, tokenizer = tiny
    _, evaluation = dialogues(10, eval_size=3, seed=0)
    prompts, references = last_answers(evaluation)
    settings = {"greedy": {}, "repetition_penalty=1.3": {"repetition_penalty": 1.3}}
    result = compare_decoding(model, tokenizer, settings, ["Say good day to Ben and Mia."], prompts, references,
                              long_tokens=12)
    greedy = ftlab.evaluation.generation.generate(model, tokenizer, ["Say good day to Ben and Mia."], max_new_tokens=20,
                                     min_new_tokens=12)
    assert result.row("greedy")["repeated"] == pytest.approx(repeated_share(greedy[0].text))
    assert [row["name"] for row in result.rows] == list(settings) and all(r["asked"] == 3 for r in result.rows)
    assert result.row(result.best)["right"] >= 0.9 * max(row["right"] for row in result.rows)
    assert result.row(result.best)["repeated"] == min(r["repeated"] for r in result.rows
                                                      if r["right"] >= 0.9 * max(row["right"] for row in result.rows))
    assert "least repetition while keeping 90% of the most right answers" in capsys.readouterr().out


def test_the_answer_repetition_penalty_spares_the_history_and_penalises_the_answers_own_repeats():
    import torch

    from ftlab.evaluation.generation import with_answer_penalty

    settings = with_answer_penalty({"answer_repetition_penalty": 2.0, "max_new_tokens": 8}, prompt_length=4)
    assert "answer_repetition_penalty" not in settings and settings["max_new_tokens"] == 8
    (processor,) = settings["logits_processor"]
    ids = torch.tensor([[7, 7, 3, 1, 9, 9]])  # 4 prompt tokens (the history: 7 is the name), then the answer so far
    scores = processor(ids, torch.full((1, 12), 4.0))
    assert scores[0, 7] == 4.0 and scores[0, 3] == 4.0  # in the history only: not penalised
    assert scores[0, 9] == 2.0 and scores[0, 5] == 4.0  # repeated in the answer: divided by 2; unseen: as it was
    assert with_answer_penalty({"answer_repetition_penalty": 1.0}, 4) == {}


def test_a_sampled_chat_with_a_seed_answers_the_same_twice(tiny):
    model, tokenizer = tiny
    replies = [Chat(model, tokenizer, seed=3, max_new_tokens=12).ask("Say hello to Mia.", stream=False).text
               for _ in range(2)]
    assert replies[0] == replies[1]
    assert Chat(model, tokenizer).preset == "chat" and "answer_repetition_penalty" in ftlab.evaluation.generation.DECODING["chat"]
