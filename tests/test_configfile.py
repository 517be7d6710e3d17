"""``ftlab train CONFIG.yaml``'s file: read strictly, every mistake named by file, line, key, value and choices."""

import os
import re
import subprocess
import sys
from textwrap import dedent

import pytest

from ftlab.config import RoundConfig
from ftlab.configfile import ConfigFileError, read

GOOD = """\
preset: cpu-tiny
model: tiny
train: train.jsonl
eval: demo
name: from a file
learning_rate: 1e-3
max_steps: 30
target_modules: [q_proj, v_proj]
"""


def write(tmp_path, text, name="round.yaml"):
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    (tmp_path / "train.jsonl").write_text('{"prompt": "Hi", "completion": "Hello"}\n', encoding="utf-8")
    return path


def refused(tmp_path, text, *words):
    with pytest.raises(ConfigFileError) as caught:
        read(write(tmp_path, text))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "round.yaml")), message
    assert all(w in message for w in words), message
    return message


def test_a_good_file_gives_the_preset_with_its_knobs_and_paths_beside_it(tmp_path):
    spec = read(write(tmp_path, GOOD))
    expected = RoundConfig.preset("cpu-tiny", learning_rate=1e-3, max_steps=30, target_modules=["q_proj", "v_proj"])
    assert spec.config == expected and spec.config.learning_rate == 1e-3  # 1e-3 read as a number, not text
    assert spec.model == "tiny" and spec.eval == "demo" and spec.name == "from a file"
    assert spec.train == str(tmp_path / "train.jsonl")  # beside the config file, wherever it is run from
    assert spec.lines["max_steps"] == 7 and spec.template == "chat" and spec.lab is None
    (tmp_path / "mine.jinja").write_text("{{ messages }}", encoding="utf-8")
    spec = read(write(tmp_path, GOOD + "template: mine.jinja\nlab: runs\n"))
    assert spec.template == str(tmp_path / "mine.jinja") and spec.lab == str(tmp_path / "runs")


def test_a_typo_in_a_key_names_the_key_its_line_and_the_nearest_valid_one(tmp_path):
    refused(tmp_path, GOOD + "learning_rte: 2e-4\n", "line 9", "'learning_rte'", "did you mean 'learning_rate'")
    refused(tmp_path, GOOD + "lora_rank: 8\n", "'lora_rank'", "did you mean 'lora_r'")
    message = refused(tmp_path, GOOD + "colour: blue\n", "unknown key 'colour'", "valid keys")
    assert "batch_size" in message and "model" in message


@pytest.mark.parametrize(("line", "words"), [
    ("batch_size: four", ("line 9", "batch_size = 'four'", "whole number")),
    ("batch_size: 2.5", ("batch_size = 2.5", "whole number")),
    ("lr_scheduler_type: cosin", ("lr_scheduler_type = 'cosin'", "'cosine'", "'linear'")),
    ("packing: maybe", ("packing = 'maybe'", "True or False")),
    ("weight_decay: -1", ("weight_decay = -1", ">= 0")),
    ("quantization: 4", ("quantization = 4", "'4bit'")),
    ("save_steps: 0", ("save_steps = 0", "None or a number of steps")),
])
def test_a_wrong_value_names_its_line_the_key_the_value_and_what_is_allowed(tmp_path, line, words):
    refused(tmp_path, GOOD + line + "\n", *words)


def test_materials_are_checked_before_anything_loads(tmp_path):
    refused(tmp_path, GOOD.replace("cpu-tiny", "cpu-tinny"), "line 1", "'cpu-tinny'", "cpu-tiny", "t4-qlora")
    refused(tmp_path, GOOD.replace("train.jsonl", "trian.jsonl"), "line 3", "'trian.jsonl'", "no such file")
    refused(tmp_path, GOOD.replace("model: tiny", "model: 5"), "line 2", "model: 5 is not text")
    refused(tmp_path, GOOD.replace("model: tiny\n", ""), "no 'model' key", "model: ...")
    refused(tmp_path, GOOD.replace("eval: demo", "template: nowhere.jinja"), "line 4", "'nowhere.jinja'")


def test_path_mistakes_are_caught_by_the_check_before_anything_loads(tmp_path):
    """Each used to pass --check and fail after the model loaded (or train on: the same file as train and eval)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "notes.txt").write_text("my notes", encoding="utf-8")
    refused(tmp_path, GOOD.replace("eval: demo", "eval: train.jsonl"), "line 4", "eval: 'train.jsonl' is the train "
            "file too: its eval loss would be a training loss", "ftlab.data.split(rows, eval_size=0.1)")
    refused(tmp_path, GOOD.replace("eval: demo", "eval: ./train.jsonl"), "line 4", "is the train file too")
    refused(tmp_path, GOOD.replace("train: train.jsonl", "train: data"), "line 3", "train: 'data' is a folder",
            "name one of its files")
    refused(tmp_path, GOOD + "lab: notes.txt\n", "line 9", "lab: 'notes.txt' is a file of 8 bytes", "not a folder")
    assert read(write(tmp_path, GOOD + "lab: data\n")).lab == str(tmp_path / "data")  # an existing folder is fine


def test_a_file_saved_as_latin1_is_named_by_file_and_line(tmp_path):
    from ftlab.files.faults import NotText

    path = tmp_path / "round.yaml"
    write(tmp_path, GOOD)
    path.write_bytes((GOOD + "notes: réglage du taux\n").encode("latin-1"))
    with pytest.raises(NotText, match=rf"^{re.escape(str(path))}, line 9: not UTF-8 text \(byte 0xe9 .*Latin-1.*Save it "
                                      "as UTF-8"):
        read(path)
    (tmp_path / "mine.jinja").write_bytes("{{ 'Réponse' }}".encode("latin-1"))  # the template it names, too
    path.write_text(GOOD.replace("eval: demo", "template: mine.jinja"), encoding="utf-8")
    with pytest.raises(NotText, match=r"mine\.jinja, line 1: not UTF-8 text"):
        read(path)


def test_a_number_of_steps_no_round_reaches_is_refused(tmp_path):
    refused(tmp_path, GOOD.replace("max_steps: 30", "max_steps: 1e12"), "line 7", "max_steps = 1000000000000.0: is more "
            "than 10,000,000 steps")
    refused(tmp_path, GOOD.replace("max_steps: 30", "max_steps: 3e2"), "line 7", "whole number (write it as digits, "
            "300")


def test_what_is_not_a_list_of_keys_is_refused_with_its_line(tmp_path):
    refused(tmp_path, GOOD + "max_steps: 40\n", "line 9", "'max_steps' is given twice", "line 7")
    refused(tmp_path, "model: tiny\n  train: [x\n", "not valid YAML")
    refused(tmp_path, "- model: tiny\n", "line 1", "key: value")
    refused(tmp_path, "", "empty")


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ftlab.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_the_command_refuses_a_bad_file_in_one_line_and_checks_a_good_one_without_torch(tmp_path):
    write(tmp_path, GOOD + "learning_rte: 2e-4\n", "bad.yaml")
    out = cli("train", "bad.yaml", cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "bad.yaml, line 9" in lines[0] and "did you mean 'learning_rate'" in lines[0]
    write(tmp_path, GOOD)
    code = ("import sys, ftlab.cli as c; status = c.main(['train', 'round.yaml', '--check']); "
            "print('torch' in sys.modules, status)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.stdout.split()[-2:] == ["False", "0"], out.stdout + out.stderr
    assert "learning_rate                0.001" in out.stdout and "effective batch 16 x 1 = 16" in out.stdout


def test_a_model_that_cannot_load_here_is_said_in_one_line(tmp_path):
    write(tmp_path, "model: someone/not-in-the-cache\ntrain: demo\nlab: lab\n")
    out = cli("train", "round.yaml", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith("ftlab train: error: Cannot load 'someone/not-in-the-cache'")
