"""One safetensors header reader, one dtype table, one atomic folder: each rule in one place, and what it promises.

The header reader and ``atomic_folder`` need only the standard library; the dtype table is checked against torch.
"""

import os
import re
from pathlib import Path

import pytest

import ftlab
from ftlab.files import safetensors as streamed
from ftlab.files.atomic import atomic_folder
from ftlab.files.cache import saved_parameters
from ftlab.files.safetensors import DTYPE_TABLE, DTYPES, PRECISIONS, dtype_code, read_header, torch_dtype

ROOT = Path(ftlab.__file__).parent


def write_safetensors(path: Path, shapes: dict[str, list[int]], dtype: str = "F16") -> None:
    with open(path, "wb") as f:
        streamed.write_header(f, [(name, dtype, shape) for name, shape in shapes.items()])
        f.write(bytes(sum(streamed.numel(s) * DTYPES[dtype] for s in shapes.values())))


def test_one_header_reader_serves_the_merge_and_the_parameter_count(tmp_path):
    write_safetensors(tmp_path / "a.safetensors", {"w": [3, 4], "b": [4]})
    write_safetensors(tmp_path / "b.safetensors", {"e": [5, 2]}, "F32")
    assert read_header(tmp_path / "a.safetensors")["w"] == {"dtype": "F16", "shape": [3, 4], "data_offsets": [0, 24]}
    (tmp_path / "empty").mkdir()
    assert saved_parameters(tmp_path) == 12 + 4 + 10 and saved_parameters(tmp_path / "empty") is None
    assert streamed.data_start(tmp_path / "b.safetensors") % 8 == 0  # the header is padded to 8 bytes, as safetensors does
    (tmp_path / "c.safetensors").write_bytes(b"\x01\x02")  # a cut-off copy: both callers get the reader's message
    for read in (lambda: read_header(tmp_path / "c.safetensors"), lambda: saved_parameters(tmp_path)):
        with pytest.raises(ValueError, match=r"c\.safetensors is cut short: 2 of 8 bytes.*save it again"):
            read()
    lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 2200119864\n"  # weights never fetched
    (tmp_path / "c.safetensors").write_text(lfs)
    with pytest.raises(ValueError, match=r"c\.safetensors is not a safetensors file.*Git LFS pointer"):
        read_header(tmp_path / "c.safetensors")


def test_the_dtype_table_agrees_with_torch_and_reads_both_ways():
    torch = pytest.importorskip("torch")
    for code, (size, _) in DTYPE_TABLE.items():
        assert torch_dtype(code).itemsize == size == DTYPES[code] and dtype_code(torch_dtype(code)) == code
    assert [torch_dtype(p) for p in ("fp16", "bf16", "fp32")] == [torch.float16, torch.bfloat16, torch.float32]
    assert set(PRECISIONS) == {"fp16", "bf16", "fp32"}  # the precisions RoundConfig and the merge accept


# A mapping whose key is a dtype's name ("F16":, "fp16":, "torch.float16":) and whose value is another name,
# a size or a torch dtype: a dtype table. ftlab.files.safetensors holds the only one.
DTYPE_TABLE_ENTRY = re.compile(r"[\"'](torch\.)?(F16|BF16|F32|fp16|bf16|fp32|float16|bfloat16|float32)[\"']\s*:"
                               r"\s*(torch\.\w+|[\"']\w+[\"']|\d|\()")


def test_no_module_but_the_safetensors_one_spells_a_dtype_table():
    assert DTYPE_TABLE_ENTRY.search('{"torch.float16": "F16"}') and DTYPE_TABLE_ENTRY.search('{"bf16": torch.bfloat16}')
    found = [f"{path.relative_to(ROOT)}:{n}" for path in ROOT.rglob("*.py") if path != ROOT / "files" / "safetensors.py"
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if DTYPE_TABLE_ENTRY.search(line)]
    assert not found, f"dtype tables outside ftlab.files.safetensors (use DTYPE_TABLE / PRECISIONS / torch_dtype): {found}"


def test_an_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(OSError, match="disk full"), atomic_folder(target) as staging:
        (staging / "weights").write_text("half")
        raise OSError("disk full")
    assert not target.exists() and list(tmp_path.iterdir()) == []  # no half folder, no staging left behind
    with atomic_folder(target) as staging:
        (staging / "weights").write_text("old")
    with atomic_folder(target) as staging:  # another process finished first: its folder stays
        (staging / "weights").write_text("second")
    with pytest.raises(RuntimeError), atomic_folder(target, replace=True) as staging:
        (staging / "weights").write_text("new")
        raise RuntimeError
    assert (target / "weights").read_text() == "old"  # a failed replacement leaves the old folder untouched
    with atomic_folder(target, replace=True) as staging:
        (staging / "weights").write_text("new")
    assert (target / "weights").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o755)  # readable by a shared cache's other users


def test_staging_left_by_a_killed_process_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from ftlab.files.atomic import _staging_prefix

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)

    def staging_of(name, pid):
        return tmp_path / (_staging_prefix(tmp_path / name).replace(f"-{os.getpid()}-", f"-{pid}-") + "abc_1")

    killed, running = staging_of("merged", ended.stdout.strip()), staging_of("merged", os.getpid())
    other_target = staging_of("merged-2", ended.stdout.strip())  # not this target's: left alone
    for folder in (killed, running, other_target):
        folder.mkdir()
    with atomic_folder(tmp_path / "merged") as staging:
        (staging / "weights").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other_target.name, "merged"])


def test_a_weights_file_cut_short_is_refused_by_its_header_and_by_the_bytes_read(tmp_path):
    """A copy that stopped early used to merge (and write a GGUF) from garbage: every read now checks the file."""
    torch = pytest.importorskip("torch")
    from ftlab.files.faults import CutShort, DamagedFile

    path = tmp_path / "model.safetensors"
    write_safetensors(path, {"a": [4, 4], "b": [8]})  # 32 + 16 bytes of data after the header
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])
    with pytest.raises(CutShort) as caught:
        read_header(path)
    assert str(caught.value).startswith(f"{path} is cut short: {len(whole) - 10:,} of {len(whole):,} bytes. A download "
                                        "or copy that stopped early")
    with pytest.raises(CutShort):  # the parameter count reads the same header: refused too
        saved_parameters(tmp_path)
    path.write_bytes(whole)
    header, start = read_header(path), streamed.data_start(path)
    with open(path, "rb") as f:
        assert torch.equal(streamed.read_tensor(f, header["b"], start), torch.zeros(8, dtype=torch.float16))
        os.truncate(path, len(whole) - 4)  # cut while it is open: after its header was read, before the tensor
        with pytest.raises(CutShort, match=rf"is cut short: {len(whole) - 4:,} of {len(whole):,} bytes"):
            streamed.read_tensor(f, header["b"], start)
    path.write_bytes(whole)
    every = streamed.read_tensors(path)
    assert set(every) == {"a", "b"} and every["a"].shape == (4, 4)
    lying = tmp_path / "lying.safetensors"  # a header whose byte range does not fit its shape
    with open(lying, "wb") as f:
        text = b'{"w":{"dtype":"F16","shape":[4,4],"data_offsets":[0,8]}}'
        f.write(len(text).to_bytes(8, "little") + text + bytes(8))
    with pytest.raises(DamagedFile, match=r"lying\.safetensors is damaged: its header gives 'w' bytes 0-8, but a F16 "
                                          r"tensor of shape \[4, 4\] takes 32 bytes"):
        read_header(lying)
