"""One damaged round never hides the lab: it is listed as unreadable with its file and where parsing stopped, every
other round is still listed, compared and trained beside it, and training into that lab says so once.

The lab is a copy of ``tests/fixtures/lab-0.1.0`` (three rounds) with round 2's ``round.json`` cut off, as a copy
to Drive that stopped early leaves it (seeds 000 and 003 lost logs and checkpoints this way).
"""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import ftlab
from ftlab.files.faults import DamagedFile, NotText, OutputInUse
from ftlab.lab.storage import read_jsonl
from ftlab.lab.table import NotComparableWarning

FIXTURE = Path(__file__).parent / "fixtures" / "lab-0.1.0"
ROOT = Path(__file__).resolve().parent.parent
CUT = '{"id": 2, "name": "lower lr", "status": "succ'  # the record as a copy that stopped early leaves it
COLUMN = CUT.index('"succ') + 1  # where the unterminated string starts (1-based)


@pytest.fixture
def damaged_lab(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "lab")
    record = tmp_path / "lab" / "round-002" / "round.json"
    record.write_text(CUT, encoding="utf-8")
    return ftlab.Lab(tmp_path / "lab")


def test_a_damaged_round_is_listed_as_unreadable_and_every_other_round_as_usual(damaged_lab):
    lab = damaged_lab
    assert [r.id for r in lab.rounds()] == [1, 3] and [r.status for r in lab.rounds()] == ["succeeded", "failed"]
    (damaged,) = lab.unreadable()
    record = lab.path / "round-002" / "round.json"
    assert damaged.id == 2 and isinstance(damaged.problem, DamagedFile)
    assert (damaged.problem.line, damaged.problem.column) == (1, COLUMN)
    assert str(damaged.problem).startswith(f"{record} is damaged: not valid JSON (unterminated string starting at line "
                                           f"1, column {COLUMN}). The lab lists this round as unreadable")
    table = lab.table()
    assert list(table.index) == [1, 2, 3] and table.at[2, "status"] == "⚠ unreadable"
    assert table.at[2, "failure"] == str(damaged.problem) and table.at[1, "changed"] == "(baseline)"
    assert "| 2 |  | ⚠ unreadable |" in lab.to_markdown() and "| 3 | bad data | ❌ failed |" in lab.to_markdown()
    assert repr(lab).endswith(": 2 round(s), 1 unreadable")
    with pytest.raises(KeyError, match=r"round 2 of .* is unreadable: .*round-002/round\.json is damaged"):
        lab[2]
    assert lab[1].config.seed == 42 and "checkpoint-6" in lab[1].resume_hint()  # still resumable from its checkpoint
    with pytest.warns(NotComparableWarning, match="Rounds 1 and 3 were evaluated on different data"):
        assert set(lab.compare([1, 3]).table.index) == {1, 3}


def test_ftlab_runs_lists_every_round_and_names_the_damaged_file_without_torch(damaged_lab):
    code = ("import sys; from ftlab.cli import main; status = main(['runs', sys.argv[1]]); "
            "print('heavy:', [m for m in ('torch', 'transformers') if m in sys.modules], status)")
    out = subprocess.run([sys.executable, "-c", code, str(damaged_lab.path)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "heavy: [] 0" in out.stdout
    assert ": 3 round(s), 1 unreadable; **bold** = differs from baseline round 1" in out.stdout
    assert "| 1 | baseline | ✅ succeeded |" in out.stdout and "| 3 | bad data | ❌ failed |" in out.stdout
    assert (f"⚠ Round 2: unreadable: {damaged_lab.path / 'round-002' / 'round.json'} is damaged: not valid JSON "
            f"(unterminated string starting at line 1, column {COLUMN})") in out.stdout


def test_records_that_parse_but_cannot_be_a_round_are_unreadable_too(damaged_lab):
    lab = damaged_lab
    (lab.path / "round-002" / "round.json").write_bytes('{"id": 2, "name": "réglage"}'.encode("latin-1"))
    (problem,) = [r.problem for r in lab.unreadable()]
    assert isinstance(problem, NotText) and "round.json, line 1: not UTF-8 text" in str(problem)
    (lab.path / "round-002" / "round.json").write_text(json.dumps({"id": 2, "status": "succeeded"}), encoding="utf-8")
    (problem,) = [r.problem for r in lab.unreadable()]
    assert "round.json is damaged: it parses, but it has no 'config'" in str(problem)
    (lab.path / "round-003" / "round.json").write_text("[]", encoding="utf-8")
    assert [r.id for r in lab.rounds()] == [1] and [r.id for r in lab.unreadable()] == [2, 3]
    assert list(lab.table().index) == [1, 2, 3]


def test_training_into_a_lab_with_a_damaged_round_says_so_once_and_records_the_round_beside_it(damaged_lab, tiny_path):
    lab = damaged_lab
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = lab.rerun(1, samples=0)
        model, tokenizer = ftlab.tiny_model(path=tiny_path)
        rows = read_jsonl(FIXTURE / "round-001" / "data" / "train.jsonl")
        other = lab.train(lab[1].config, model, tokenizer, rows, rows[:4], samples=0)  # eval rows from train, too
    said = [str(w.message) for w in caught if "round.json" in str(w.message)]
    assert len(said) == 1 and said[0].startswith(f"{lab.path / 'round-002' / 'round.json'} is damaged")
    assert said[0].endswith("New rounds are recorded beside it as usual.")
    assert (again.status, again.id, other.status, other.id) == ("succeeded", 4, "succeeded", 5)  # round 2 not reused
    shared = [str(w.message) for w in caught if "with train rows" in str(w.message)]
    assert shared == [shared[0]] and shared[0].startswith("every eval row shares its prompt with train rows (first: "
                                                          "eval row 1 = train row(s) 1")
    assert "ftlab.data.split(rows, eval_size=0.1)" in shared[0]
    assert [r.id for r in lab.rounds()] == [1, 3, 4, 5] and [r.id for r in lab.unreadable()] == [2]


def test_a_lab_path_that_is_a_file_is_refused_before_anything_is_read(tmp_path):
    (tmp_path / "lab").write_text("a file, not a lab")
    with pytest.raises(OutputInUse, match=r"lab already exists and is a file of 17 bytes, not a lab ftlab wrote\. Not "
                                          r"writing over it: a lab is a folder of its own"):
        ftlab.Lab(tmp_path / "lab").train(ftlab.RoundConfig.preset("cpu-tiny"), None, None, "no-such-data.jsonl")
    assert (tmp_path / "lab").read_text() == "a file, not a lab"


def test_a_folder_given_as_data_fails_the_round_as_a_data_problem_naming_it(tmp_path, tiny):
    """It used to be recorded as an "unknown" failure, with advice to search the transformers issues."""
    (tmp_path / "data").mkdir()
    model, tokenizer = tiny
    round_ = ftlab.Lab(tmp_path / "lab").train(ftlab.RoundConfig.preset("cpu-tiny"), model, tokenizer, tmp_path / "data")
    failure = round_.record["failure"]
    assert round_.status == "failed" and failure["kind"] == "data format"
    assert failure["findings"][0]["file"] == str(tmp_path / "data")
    assert failure["findings"][0]["message"].startswith("a folder, not a data file; pass one of its files (.jsonl")


def test_eval_rows_that_share_their_prompt_with_train_are_counted_in_the_warning():
    from ftlab.data.splits import warn_if_shared

    def row(prompt):
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": "ok"}]}

    train = [row(f"Greet {name}.") for name in ("Ada", "Bo", "Cy")]
    with pytest.warns(UserWarning, match=r"^1 of 4 eval rows \(25%\) share their prompt with train rows \(first: eval "
                                         r"row 3 = train row\(s\) 2: user: greet bo\.\)"):
        leaks = warn_if_shared(train, [row("Greet Dee."), row("Greet Eve."), row("Greet Bo."), row("Greet Fay.")])
    assert [leak.eval_row for leak in leaks] == [3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_shared(train, [row("Greet Dee.")]) == [] and warn_if_shared(train, None) == []
