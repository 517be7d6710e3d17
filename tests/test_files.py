"""Files checked before they are trusted, outputs never written over what ftlab did not write, failed writes that
replace nothing: the rules of ``ftlab.files`` (records, faults, atomic) on their own, standard library only."""

import errno
import json
import os
import pickle
from pathlib import Path

import pytest

from ftlab.files import atomic
from ftlab.files.atomic import (
    MANIFEST,
    atomic_file,
    atomic_folder,
    atomic_write_json,
    atomic_write_text,
    claim,
    ensure_folder,
)
from ftlab.files.faults import CutShort, DamagedFile, NotText, OutputInUse, WriteFailed, disk_refusal
from ftlab.files.records import read_json, read_text


# ------------------------------------------------------------------------------------------ records
def test_a_record_that_does_not_parse_names_its_file_line_column_and_the_fix(tmp_path):
    record = tmp_path / "round.json"
    record.write_text('{"id": 2,\n "name": "lr 2e-4, cut', encoding="utf-8")  # cut off mid-string
    with pytest.raises(DamagedFile) as caught:
        read_json(record, "Restore it from a copy.")
    assert str(caught.value) == (f"{record} is damaged: not valid JSON (unterminated string starting at line 2, column "
                                 "10). Restore it from a copy.")
    assert (caught.value.path, caught.value.line, caught.value.column) == (record, 2, 10)
    record.write_text("", encoding="utf-8")
    with pytest.raises(DamagedFile, match=r"round\.json is damaged: not valid JSON \(it is empty\)"):
        read_json(record)
    record.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DamagedFile, match=r"parses, but it holds a JSON list \(\[\.\.\.\]\) where a JSON object"):
        read_json(record)
    assert read_json(record, kind=list) == [1, 2]
    with pytest.raises(FileNotFoundError):  # a missing file is the caller's to explain
        read_json(tmp_path / "absent.json")


def test_a_text_file_that_is_not_utf8_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "round.yaml"
    path.write_bytes("model: tiny\ntrain: demo\nname: café au lait\n".encode("latin-1"))
    with pytest.raises(NotText) as caught:
        read_text(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}, line 3: not UTF-8 text (byte 0xe9 cannot be read as UTF-8")
    assert "Save it as UTF-8" in str(caught.value)
    path.write_text("name: café\n", encoding="utf-8")
    assert read_text(path) == "name: café\n"


def test_the_faults_survive_a_trip_to_another_process():
    for fault in (CutShort("w.safetensors", 10, 20), DamagedFile("x.json is damaged", "x.json"),
                  OutputInUse("/nonexistent/out", "merged model", ["notes.txt"]),
                  WriteFailed("out.gguf", OSError(errno.ENOSPC, "No space left on device"))):
        again = pickle.loads(pickle.dumps(fault))
        assert type(again) is type(fault) and str(again) == str(fault)
    assert pickle.loads(pickle.dumps(CutShort("w", 1, 2))).need == 2


# ------------------------------------------------------------------------------------------ the output rule
def test_an_output_that_is_not_ftlabs_own_is_refused_naming_what_it_holds(tmp_path):
    target = tmp_path / "my_models"
    assert claim(target, "merged model") is False  # nothing there
    target.mkdir()
    assert claim(target, "merged model") is True  # an empty folder: nothing to lose
    (target / "notes.txt").write_text("three weeks of notes")
    (target / "other-model").mkdir()
    with pytest.raises(OutputInUse) as caught:
        with atomic_folder(target, kind="merged model") as staging:
            (staging / "model.safetensors").write_text("new")
    assert str(caught.value) == (f"{target} already exists and holds notes.txt, other-model/, not a merged model "
                                 "ftlab wrote. Not writing over it: give the merged model a path of its own, or pass "
                                 "replace=True to delete what is there and write the merged model in its place.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_models"]  # no staging left, nothing touched
    assert (target / "notes.txt").read_text() == "three weeks of notes"
    with atomic_folder(target, replace=True, kind="merged model") as staging:  # asked for: replaced
        (staging / "model.safetensors").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, "model.safetensors"]


def test_ftlabs_own_earlier_output_is_replaced_but_not_what_was_added_beside_it(tmp_path):
    target = tmp_path / "merged"
    with atomic_folder(target, kind="merged model") as staging:
        (staging / "model.safetensors").write_text("first")
        (staging / "sub").mkdir()
        (staging / "sub" / "a.json").write_text("{}")
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["kind"] == "merged model" and manifest["files"] == ["model.safetensors", "sub/a.json"]
    with atomic_folder(target, kind="merged model") as staging:  # a merge run again: its own folder, replaced
        (staging / "model.safetensors").write_text("second")
    assert (target / "model.safetensors").read_text() == "second" and not (target / "sub").exists()
    (target / "README.md").write_text("my model card")
    with pytest.raises(OutputInUse, match=r"merged already exists and holds README\.md beside the merged model ftlab "
                                          r"wrote there\. Not writing over it"):
        claim(target, "merged model")
    with pytest.raises(OutputInUse, match="not an adapter ftlab wrote"):  # ftlab's, but another kind of output
        claim(target, "adapter", ours=lambda path: True)
    (target / MANIFEST).write_text("{not json")  # a record ftlab cannot read proves nothing: refused
    (target / "README.md").unlink()
    with pytest.raises(OutputInUse, match="holds .ftlab-output.json, model.safetensors, not a merged model"):
        claim(target, "merged model")


def test_a_file_output_is_replaced_only_when_its_writer_recognises_it(tmp_path):
    target = tmp_path / "new" / "folder" / "model.gguf"
    with atomic_file(target, "GGUF file") as temp:  # its folder is made
        temp.write_bytes(b"GGUF ours")
    with atomic_file(target, "GGUF file", ours=lambda path: path.read_bytes().startswith(b"GGUF")) as temp:
        temp.write_bytes(b"GGUF again")
    assert target.read_bytes() == b"GGUF again"
    notes = tmp_path / "notes.gguf"
    notes.write_text("mine")
    with pytest.raises(OutputInUse, match=r"notes\.gguf already exists and is a file of 4 bytes, not a GGUF file ftlab "
                                          r"wrote\. Not writing over it"):
        with atomic_file(notes, "GGUF file", ours=lambda path: path.read_bytes().startswith(b"GGUF")):
            pass
    assert notes.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["new", "notes.gguf"]


def test_a_lab_folder_may_exist_but_not_as_a_file(tmp_path):
    assert ensure_folder(tmp_path / "lab" / "inner", "lab").is_dir()
    (tmp_path / "lab.txt").write_text("x")
    with pytest.raises(OutputInUse, match=r"lab\.txt already exists and is a file of 1 byte, not a lab ftlab wrote\. "
                                          r"Not writing over it: a lab is a folder of its own"):
        ensure_folder(tmp_path / "lab.txt", "lab")


# ------------------------------------------------------------------------------------------ full disks
def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_replaces_nothing_and_says_so(tmp_path, monkeypatch):
    record = tmp_path / "round.json"
    atomic_write_json(record, {"id": 1})
    folder = tmp_path / "merged"
    with atomic_folder(folder, kind="merged model") as staging:
        (staging / "w").write_text("good")
    monkeypatch.setattr(atomic.os, "fsync", full_disk)  # the disk fills up as the record is flushed
    with pytest.raises(WriteFailed) as caught:
        atomic_write_text(record, '{"id": 1, "status": "succeeded"}')
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert str(caught.value) == (f"{record} could not be written: the disk is full. Nothing was replaced: what was at "
                                 f"{record} before is still there, and the partial copy was removed. Free space there "
                                 "(or in the temporary folder), or write it to another disk.")
    monkeypatch.undo()
    with pytest.raises(WriteFailed, match="merged could not be written: the file grew past the largest file"):
        with atomic_folder(folder, kind="merged model") as staging:
            (staging / "w").write_text("half")
            raise OSError(errno.EFBIG, "File too large")
    with pytest.raises(WriteFailed, match=r"model\.gguf could not be written: the disk took 4,096 of 65,536 bytes"):
        with atomic_file(tmp_path / "model.gguf", "GGUF file") as temp:
            temp.write_bytes(b"half")
            raise OSError("65536 requested and 4096 written")  # numpy's tofile on a full disk: no errno
    assert json.loads(record.read_text()) == {"id": 1} and (folder / "w").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged", "round.json"]  # no temporary file left
    assert disk_refusal(RuntimeError("I/O error: File too large (os error 27)")).startswith("the file grew")
    assert disk_refusal(OSError(errno.ENOENT, "No such file")) is None  # other errors pass through as they are


def test_a_write_past_the_file_size_limit_fails_cleanly_in_a_real_process(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse a write past it (EFBIG, "File too large"), as a full Drive would."""
    pytest.importorskip("resource")  # POSIX only
    import subprocess
    import sys

    code = f"""
import resource, signal
from pathlib import Path
from ftlab.files.atomic import atomic_write_text
target = Path({str(tmp_path / "log.txt")!r})
atomic_write_text(target, "good")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
try:
    atomic_write_text(target, "x" * 5000)
except OSError as error:
    print(type(error).__name__, error.errno, error)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.stdout.startswith(f"WriteFailed {errno.EFBIG} {tmp_path / 'log.txt'} could not be written: the file "
                                  "grew past the largest"), done.stderr
    assert (tmp_path / "log.txt").read_text() == "good" and [p.name for p in tmp_path.iterdir()] == ["log.txt"]
