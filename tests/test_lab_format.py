"""The lab book reads folders written before it became a package (ftlab 0.1.0's on-disk format).

``tests/fixtures/lab-0.1.0`` was written by ftlab 0.1.0 (two rounds that succeeded, one that failed on
a bad row; adapters and checkpoint weights removed to keep it small) and ``lab-0.1.0.table.md`` is the
table that code printed for it, grown since by one cell and three columns: a failure now shows its row, field
and message, read from the stored record, and the optimiser, quantization and precision that ran are columns
(a record that predates them shows the knob as asked). Reading must give that table, the same verdicts and resume hints, and a
rerun must load the kept data and train.
"""

import shutil
from pathlib import Path

import ftlab

FIXTURE = Path(__file__).parent / "fixtures" / "lab-0.1.0"


def test_old_lab_reads_as_it_did():
    lab = ftlab.Lab(FIXTURE)
    assert [r.status for r in lab.rounds()] == ["succeeded", "succeeded", "failed"]
    assert lab.to_markdown() == (FIXTURE.parent / "lab-0.1.0.table.md").read_text(encoding="utf-8")
    assert lab[1].config.seed == 42 and lab["lower lr"].config.learning_rate == 1e-3
    assert lab[1].curve("loss")[0] == [1, 2, 4, 6] and len(lab[1].samples()) == 2
    assert "checkpoint-6" in lab[1].resume_hint()
    assert lab[3].failure["kind"] == "data format" and "row 11" in lab[3].verdict()
    assert lab.compare([1, 2]).warnings == []


def test_old_lab_reruns_from_its_kept_data(tmp_path, tiny_path):
    shutil.copytree(FIXTURE, tmp_path / "lab")
    lab = ftlab.Lab(tmp_path / "lab")
    again = lab.rerun(1, samples=0)
    assert again.status == "succeeded" and again.record["repeat_of"] == 1 and again.config.seed == 43
    assert again.record["data"]["train"]["fingerprint"] == lab[1].record["data"]["train"]["fingerprint"]
