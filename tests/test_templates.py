"""One template for training and inference; the loss falls on the answers; data with no loss is refused."""

import json

import pytest

import ftlab
from ftlab.config import RoundConfig
from ftlab.data import DataFormatError
from ftlab.templates.template import Template

ROW = {"messages": [{"role": "user", "content": "Greet Anna politely."},
                    {"role": "assistant", "content": "Good day to you, Anna."}]}


@pytest.mark.parametrize("style", ["chat", "alpaca"])
def test_the_inference_prompt_is_the_training_text_up_to_the_answer(tiny, style):
    _, tokenizer = tiny
    template = Template(tokenizer, style)
    text, prompt = template.training_text(ROW["messages"]), template.prompt(ROW["messages"])
    assert text.startswith(prompt)
    assert text[len(prompt):].startswith("Good day to you, Anna." + tokenizer.eos_token)
    ids, mask = template.encode(ROW["messages"])
    answer = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert answer == "Good day to you, Anna." + tokenizer.eos_token
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids[:len(prompt_ids)] == prompt_ids and not any(mask[:len(prompt_ids)])


def test_show_marks_exactly_the_answer(tiny, capsys):
    _, tokenizer = tiny
    shown = Template.chat(tokenizer).show(ROW)
    assert shown.endswith("⟦Good day to you, Anna.</s>⟧\n") and shown.count("⟦") == 1
    assert "tokens carry loss" in capsys.readouterr().out


def test_training_refuses_data_where_no_token_carries_loss(tiny, greet_data, tmp_path):
    model, tokenizer = tiny
    config = RoundConfig.preset("cpu-tiny", max_length=8)  # every prompt is longer: every answer is cut off
    with pytest.raises(DataFormatError, match="no token carries loss"):
        ftlab.train_round(config, model, tokenizer, *greet_data, output_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_some_truncated_rows_give_a_warning_naming_them(tiny):
    _, tokenizer = tiny
    long = {"messages": [{"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "ok"}]}
    with pytest.warns(UserWarning, match=r"1 of 2 rows of train carry no loss.*first rows: \[2\]"):
        Template.chat(tokenizer).check_loss([ROW, long], max_length=40)


def test_the_trainer_puts_the_loss_exactly_where_the_template_says(tiny, greet_data):
    from ftlab.round.train import prepare_round

    model, tokenizer = tiny
    template = Template.chat(tokenizer)
    train, _, _ = prepare_round(RoundConfig.preset("cpu-tiny"), model, template, greet_data[0][:3], None)
    ids, mask = template.encode(greet_data[0][0]["messages"])
    assert train[0]["input_ids"] == ids and train[0]["assistant_masks"] == mask


def test_an_alpaca_round_trains_and_answers_with_the_same_template(tiny, greet_data, tmp_path):
    model, tokenizer = tiny
    template = Template.alpaca(tokenizer)
    train, evaluation = greet_data
    result = ftlab.train_round(RoundConfig.preset("cpu-tiny", max_steps=80, max_length=256), model, tokenizer,
                               train, evaluation, output_dir=str(tmp_path), template=template)
    assert result.eval_loss < 0.5 * result.eval_loss_before
    answers = ftlab.evaluation.answers(result.model, tokenizer, ["Greet Anna politely."], template=template)
    assert answers[0].startswith("Good day to you")
    ppl = ftlab.evaluation.perplexity(result.model, tokenizer, evaluation)  # chat template: not what it trained on
    assert ftlab.evaluation.perplexity(result.model, tokenizer, evaluation, template=template) < ppl


def test_chinese_word_problems_end_to_end(tiny, tmp_path):
    model, tokenizer = tiny
    rows = ftlab.data.arithmetic(300, lang="zh", seed=0, duplicates=0.2)
    unique, report = ftlab.data.dedup(rows)
    assert report.exact_removed == 60
    train, evaluation = ftlab.data.split(unique, eval_size=20, seed=0, quiet=True)
    assert not ftlab.data.leakage(train, evaluation)
    shown = Template.chat(tokenizer).show(evaluation[0])
    assert evaluation[0]["messages"][-1]["content"] in shown
    result = ftlab.train_round(RoundConfig.preset("cpu-tiny", max_steps=20, max_length=256), model, tokenizer,
                               train, evaluation, output_dir=str(tmp_path))
    assert result.eval_loss < result.eval_loss_before
    # the tiny model cannot learn to write Chinese in seconds; what must hold is that nothing on the way
    # drops or mangles it: predictions are saved with the Chinese references intact, scores in range
    report = ftlab.evaluation.evaluate(result.model, tokenizer, evaluation[:4], metrics=("rouge", "f1"),
                                       max_new_tokens=16, output_dir=str(tmp_path / "eval"))
    saved = json.loads((tmp_path / "eval" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert saved["reference"] == evaluation[0]["messages"][-1]["content"] and "答案是" in saved["reference"]
    assert 0 <= report.scores["rouge1"] <= 1
