"""ftlab.data.load / validate: every source and format, every kind of bad row named by file, row, field."""

import json
import time

import pandas as pd
import pytest
from datasets import Dataset

from ftlab.data import DataFormatError, HubUnavailableError, detect_format, load, load_alpaca, validate
from ftlab.templates import Template

GOOD = {"instruction": "Say hi.", "input": "", "output": "Hi!"}
NEIGHBOURS = {  # a good row of each format, to surround a bad one
    None: GOOD, "alpaca": GOOD, "prompt_completion": {"prompt": "Hi", "completion": "Hello"},
    "chat": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
}


@pytest.fixture(scope="module")
def tokenizer():
    from ftlab.data.course_sets.synthetic import instructions
    from ftlab.models.tiny import build_tokenizer

    return build_tokenizer(instructions(200, "skills"))


def chat(user, answer, **extra):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra}


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


# --- formats -------------------------------------------------------------------------------------

def test_alpaca_rows_become_chat_with_input_appended_and_extra_columns_kept(capsys):
    rows = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "category": "math"},
            {"instruction": "Say hi.", "input": "", "output": "Hi!", "category": "chat"},
            {"instruction": "Name a colour.", "output": "Red.", "category": "chat"}]  # input is optional
    ds = load(rows)
    assert "Detected Alpaca format in data: 3 rows" in capsys.readouterr().out
    assert ds.column_names == ["messages", "category"]
    assert ds[0]["messages"] == [{"role": "user", "content": "Add the numbers.\n\n2 and 3"},
                                 {"role": "assistant", "content": "5"}]
    assert ds[1]["messages"][0]["content"] == "Say hi."  # an empty input adds nothing
    assert ds[2]["messages"][1]["content"] == "Red."
    assert ds["category"] == ["math", "chat", "chat"]


def test_sharegpt_roles_are_mapped():
    row = {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
                             {"from": "gpt", "value": "Hello."}, {"from": "human", "value": "Bye"},
                             {"from": "gpt", "value": "Goodbye."}], "source": "forum"}
    ds = load([row], quiet=True)
    assert ds[0]["messages"] == [{"role": r, "content": c} for r, c in
                                 [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."),
                                  ("user", "Bye"), ("assistant", "Goodbye.")]]
    assert ds[0]["source"] == "forum"


def test_prompt_completion_strings_and_turns():
    turns = {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]}
    ds = load([{"prompt": "Capital of France?", "completion": "Paris."}], quiet=True)
    assert ds[0]["messages"] == chat("Capital of France?", "Paris.")["messages"]
    assert load([turns], quiet=True)[0]["messages"] == chat("2+2?", "4")["messages"]


def test_tatsu_alpaca_text_column_is_dropped():
    ds = load([{**GOOD, "text": "Below is an instruction..."}], quiet=True)
    assert ds.column_names == ["messages"]


def test_jsonl_json_csv_dataframe_and_dataset_give_the_same_rows(tmp_path, capsys):
    rows = [{"instruction": "Add, then double.", "input": "1, 2", "output": "6", "category": "math"},
            {"instruction": "Say \"hi\".", "input": "", "output": "Hi!\nBye.", "category": "chat"}]
    expected = load(rows, quiet=True).to_list()
    write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "a.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps({"data": rows}), encoding="utf-8")
    pd.DataFrame(rows).to_csv(tmp_path / "a.csv", index=False)  # quotes commas and newlines
    for source in ["a.jsonl", "a.json", "b.json", "a.csv"]:
        assert load(tmp_path / source).to_list() == expected, source
    assert load(pd.DataFrame(rows), quiet=True).to_list() == expected
    assert load(Dataset.from_list(rows), quiet=True).to_list() == expected
    assert f"Detected Alpaca format in {tmp_path / 'a.csv'}: 2 rows" in capsys.readouterr().out


def test_dataframe_empty_cells_are_missing_values():
    frame = pd.DataFrame([GOOD, {"instruction": "Name a fruit.", "output": "Apple."}])  # input NaN in row 2
    assert load(frame, quiet=True)[1]["messages"][0]["content"] == "Name a fruit."
    frame = pd.DataFrame([GOOD, {"instruction": "Name a fruit.", "input": ""}])  # output NaN in row 2
    (finding,) = validate(frame)
    assert (finding.row, finding.field) == (2, "output")


def test_json_lines_saved_as_json_are_read_by_line(tmp_path, capsys):
    write_jsonl(tmp_path / "lines.json", [GOOD, GOOD | {"output": "Hello!"}])
    assert len(load(tmp_path / "lines.json")) == 2
    assert "JSON Lines" in capsys.readouterr().out


# --- every kind of bad row, named by row and field ----------------------------------------------

BAD_ROWS = [  # (bad row, field named, words the message must contain)
    ({"instruction": "Say hi."}, "output", "need 'output'"),
    ({"question": "Say hi.", "answer": "Hi"}, None, "'question' -> 'instruction'"),
    ({"instruction": "Say hi.", "output": 42}, "output", "must be a string"),
    ({"instruction": "Say hi.", "output": None}, "output", "no value"),
    ({"instruction": "Say hi.", "input": "", "output": "   "}, "output", "empty"),
    ({"instruction": "", "output": "Hi"}, "instruction", "empty"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Yo"}]},
     "messages[1].role", "'assistant'"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                   {"role": "user", "content": "Bye"}]}, "messages", "last turn must be the assistant"),
    ({"messages": [{"role": "user", "text": "Hi"}, {"role": "assistant", "content": "Hello"}]},
     "messages[0]", "'content'"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ["Hello"]}]},
     "messages[1].content", "must be a string"),
    ({"messages": []}, "messages", "non-empty list"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                   {"role": "assistant", "content": "How are you?"}]}, "messages[2]", "turns 2 and 3 are both"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                   {"role": "user", "content": " "}, {"role": "assistant", "content": "Yes?"}]},
     "messages[2].content", "turn 3, the user's, is empty"),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                        {"from": "gpt", "value": "Hi again"}]}, "conversations[2]", "no user turn between"),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "Hello"}]},
     "conversations[1].from", "'gpt'"),
    ({"prompt": "Hi"}, "completion", "both 'prompt' and 'completion'"),
    ({"prompt": "Hi", "completion": ""}, "completion", "empty"),
    ({"text": "Just some text."}, None, "no roles"),
    ({"instruction": "Say hi.", "output": "Hi", "prompt": "Say hi."}, "prompt", "one format"),
]


@pytest.mark.parametrize("bad, field, words", BAD_ROWS, ids=[str(i) for i in range(len(BAD_ROWS))])
def test_each_bad_row_is_named_by_row_and_field(bad, field, words):
    good = NEIGHBOURS[detect_format(bad)]
    rows = [good, bad, good]
    findings = validate(rows, file="mine.jsonl")
    assert [(f.row, f.field, f.file) for f in findings] == [(2, field, "mine.jsonl")], findings
    assert words in findings[0].message
    with pytest.raises(DataFormatError) as raised:  # strict: the same findings, never a KeyError
        load(rows, file="mine.jsonl", quiet=True)
    assert raised.value.findings == findings


def test_a_non_object_row_is_named():
    (finding,) = validate([GOOD, ["Say hi.", "Hi"]])
    assert finding.row == 2 and "object" in finding.message


def test_jsonl_findings_use_line_numbers_and_name_the_file(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, "", "{\"instruction\": \"x\", \"output\": }", GOOD,
                                                 {"instruction": "y", "output": ""}])
    findings = validate(path)
    assert [(f.file, f.row, f.field) for f in findings] == [(str(path), 3, None), (str(path), 5, "output")]
    assert "not valid JSON" in findings[0].message


def test_csv_rows_are_data_rows_without_the_header(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('instruction,input,output\n"Add, please",1 and 2,3\nSay hi.,,Hi\n\nName a fruit.,,\n'
                    "Too,many,cells,here\n", encoding="utf-8")
    findings = validate(path)
    assert [(f.row, f.field) for f in findings] == [(3, "output"), (4, None)]
    assert "header has 3 columns" in findings[1].message
    assert len(load(path, strict=False, quiet=True)) == 2


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "data.jsonl"
    good = json.dumps(GOOD).encode()
    lines = [good, b"", b'{"instruction": "caf\xe9 \xff", "output": "ok"}', good]
    path.write_bytes(b"\n".join(lines))
    (finding,) = validate(path)
    assert (finding.row, finding.file) == (3, str(path))
    assert "UTF-8" in finding.message and "line 3" in finding.message
    assert len(load(path, strict=False, quiet=True)) == 2


def test_gbk_file_is_recognised(tmp_path):
    path = tmp_path / "zh.jsonl"
    path.write_bytes(json.dumps({"instruction": "你好", "output": "您好"}, ensure_ascii=False).encode("gbk"))
    (finding,) = validate(path)
    assert finding.row == 1 and "GBK" in finding.message


def test_invalid_utf8_in_csv_and_json_is_tied_to_its_row(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"instruction,output\nok,fine\nbad \xff,x\n")
    assert [(f.row, "UTF-8" in f.message) for f in validate(tmp_path / "a.csv")] == [(2, True)]
    (tmp_path / "a.json").write_bytes(b'[{"instruction": "ok", "output": "fine"},\n'
                                      b' {"instruction": "\xff", "output": "x"}]')
    assert [(f.row, "bad lines: 2" in f.message) for f in validate(tmp_path / "a.json")] == [(2, True)]


def test_mixed_formats_are_reported_on_the_minority_rows():
    rows = [GOOD, GOOD, {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}, GOOD]
    (finding,) = validate(rows)
    assert finding.row == 3 and "ShareGPT" in finding.message and "Alpaca" in finding.message


def test_a_column_mixing_kinds_is_named():
    rows = [GOOD | {"category": "math"}, GOOD | {"category": "chat"}, GOOD | {"category": 7}]
    (finding,) = validate(rows)
    assert (finding.row, finding.field) == (3, "category")


def test_lenient_mode_keeps_exactly_the_good_rows(tmp_path, capsys):
    good = [{"instruction": f"Question {i}", "input": "", "output": f"Answer {i}", "category": "q"} for i in range(6)]
    bad = ['{"instruction": "broken', {"instruction": "x", "output": ""}, {"instruction": "y", "output": 3},
           {"question": "z", "answer": "w"}]
    mixed = [good[0], bad[0], good[1], good[2], bad[1], bad[2], good[3], bad[3], good[4], good[5]]
    dropped = validate(write_jsonl(tmp_path / "mixed.jsonl", mixed))
    assert [f.row for f in dropped] == [2, 5, 6, 8]
    kept = load(tmp_path / "mixed.jsonl", strict=False)
    assert kept.to_list() == load(write_jsonl(tmp_path / "good.jsonl", good), quiet=True).to_list()
    out = capsys.readouterr().out
    assert "Dropped 4 of 10 rows" in out and "invalid JSON: 1" in out and "empty answer: 1" in out


def test_an_empty_source_is_a_finding(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    (finding,) = validate(tmp_path / "empty.jsonl")
    assert finding.row is None and "no rows" in finding.message
    with pytest.raises(DataFormatError):
        load([], strict=False, quiet=True)


def test_lenient_mode_with_nothing_left_raises():
    with pytest.raises(DataFormatError):
        load([{"instruction": "x", "output": ""}], strict=False, quiet=True)


def test_findings_are_capped_with_a_note():
    findings = validate([{"instruction": "x", "output": ""}] * 1200, limit=1000)
    assert len(findings) == 1001 and findings[999].row == 1000
    assert findings[-1].row is None and "200 more" in findings[-1].message


def test_rows_too_long_for_max_length(tokenizer):
    rows = [chat("Hi", "Hello."), chat("Tell me " * 40, "Sure " * 40), chat("Hey", "Yo")]
    from ftlab.templates.template import Template

    lengths = [len(Template.chat(tokenizer).encode(r["messages"])[0]) for r in rows]
    limit = lengths[0] + 5
    findings = validate(rows, template=Template.chat(tokenizer), max_length=limit)
    assert [f.row for f in findings] == [i + 1 for i, n in enumerate(lengths) if n > limit] == [2]
    assert f"{lengths[1]} tokens" in findings[0].message


def test_the_course_sets_and_the_converters_build_one_chat_row_shape():
    from ftlab.data import arithmetic, general, instructions
    from ftlab.data.formats import chat_row, chat_turns, to_chat

    row = chat_row(("Hi", "Hello"), system="Be brief.", category="greeting")
    assert row == {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello"}], "category": "greeting"}
    assert detect_format(row) == "chat" and to_chat(row, "chat")[0] == row
    assert to_chat(GOOD, "alpaca")[0]["messages"] == chat_turns(("Say hi.", "Hi!"))
    for made in (general(1)[0], arithmetic(1, seed=0)[0], instructions(1, "double", seed=0)[0]):
        (question, answer), extra = [t["content"] for t in made["messages"]], dict(made)
        del extra["messages"]
        assert made == chat_row((question, answer), **extra)


# --- sources that are not there --------------------------------------------------------------------

def test_hub_id_offline_fails_fast_with_a_way_out():
    started = time.perf_counter()
    with pytest.raises(HubUnavailableError) as raised:
        load("someone/some-dataset")
    assert time.perf_counter() - started < 10
    assert "general()" in str(raised.value) and "arithmetic(" in str(raised.value)
    with pytest.raises(HubUnavailableError):
        load_alpaca(10)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "nope.jsonl"))
    with pytest.raises(FileNotFoundError):
        load("data/train.jsonl")


def test_a_split_passed_down_as_loaded_is_not_converted_again_but_any_dataset_is(monkeypatch, tokenizer):
    from ftlab.data import loading as loader

    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    converted = load([good], quiet=True)
    passes = []
    real = loader._inspect
    monkeypatch.setattr(loader, "_inspect", lambda source, *a, **k: passes.append(source) or real(source, *a, **k))
    assert load(loader.Loaded(converted), quiet=True) is converted and passes == []  # converted once: not again
    assert load(converted, quiet=True)["messages"] == converted["messages"] and len(passes) == 1  # a Dataset: checked
    with pytest.raises(DataFormatError, match="over max_length=2"):  # a length check asked for still runs
        load(loader.Loaded(converted), quiet=True, template=Template.chat(tokenizer), max_length=2)
    bad = Dataset.from_list([good, {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}])
    with pytest.raises(DataFormatError) as error:
        load(bad, file="train", quiet=True)  # a Dataset built elsewhere is converted and checked as before
    assert [(f.file, f.row, f.field) for f in error.value.findings] == [("train", 2, "messages[1].role")]
