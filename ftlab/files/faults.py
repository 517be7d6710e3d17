"""What ftlab says when a file cannot be trusted or an output cannot be written: one wording for every reader and writer.

The same faults reach a learner from many places (a lab's ``round.json``, an adapter's ``adapter_config.json``,
a base model's weights, a merged folder, a GGUF file, a calibration file), so their messages are built here,
once, and read alike wherever they are raised. Each starts with the file (and the line, column or byte where
that is known), says what is wrong in plain words, then what to do; the caller adds the step that fits it
(``fix=``: "save the adapter again", "restore it or delete the round's folder").

- ``DamagedFile``: a record that does not parse (``ftlab.files.records.read_json``) or lacks what it must hold.
- ``NotText``: a text file that is not UTF-8 (a ``round.yaml`` saved as Latin-1), by line.
- ``CutShort``: a weights file shorter than its own header says ("FILE is cut short: N of M bytes").
- ``OutputInUse``: an output that exists and is not ftlab's own earlier output (``ftlab.files.atomic.claim``).
- ``WriteFailed``: a write the disk refused (full, over its size limit, over quota: ``disk_refusal`` reads how
  Python, numpy and safetensors each say it); the partial copy removed, nothing replaced.

Why one module rather than each message beside its rule: these rules (parse a record, check a file's
length, claim an output) are each written once too, in ``ftlab.files``; the messages that only one part of
ftlab can give (the planner's, the chat's, an export's) stay next to the rule that knows what is allowed
there (``PlanInputError``, ``ChatError``, ``ExportError``), and follow the same order: where, what, the fix.
Standard library only.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

REFETCH = "A download or copy that stopped early, or a disk that filled up while it was written: fetch or save it again."


class FileFault(ValueError):
    """A file or folder ftlab cannot use as it is; ``path`` is the file, the message says what to do."""

    def __init__(self, message: str, path):
        super().__init__(message)
        self.path = Path(path)

    def __reduce__(self):  # keeps the message when a worker process hands the error back
        return _rebuilt, (type(self), self.args[0], str(self.path), self.__dict__)


def _rebuilt(cls, message, path, state):
    error = cls.__new__(cls)
    FileFault.__init__(error, message, path)
    error.__dict__.update(state)
    return error


class DamagedFile(FileFault):
    """A record that cannot be read: ``line`` and ``column`` say where parsing stopped (None if it parsed)."""

    line: int | None = None
    column: int | None = None

    @classmethod
    def not_json(cls, path, error, fix: str) -> DamagedFile:
        """``path`` held text that ``json`` could not parse (``error``: its ``JSONDecodeError``)."""
        where = f"line {error.lineno}, column {error.colno}"
        message = error.msg[:1].lower() + error.msg[1:]
        problem = "it is empty" if not error.doc.strip() else f"{message}{'' if message.endswith(' at') else ' at'} {where}"
        damaged = cls(f"{path} is damaged: not valid JSON ({problem}). {fix}", path)
        damaged.line, damaged.column = error.lineno, error.colno
        return damaged

    @classmethod
    def lacks(cls, path, what: str, fix: str) -> DamagedFile:
        """``path`` parsed, but does not hold ``what`` (a key, a kind of value) that ftlab needs from it."""
        return cls(f"{path} is damaged: it parses, but {what}. {fix}", path)


class NotText(FileFault):
    """A text file that is not UTF-8; ``line`` is where the first byte UTF-8 cannot read is."""

    def __init__(self, path, error: UnicodeDecodeError, fix: str):
        data = error.object
        self.line = data.count(b"\n", 0, error.start) + 1
        bad = data[error.start:error.start + 1].hex()
        super().__init__(f"{path}, line {self.line}: not UTF-8 text (byte 0x{bad} cannot be read as UTF-8: the "
                         f"file was probably saved as Latin-1 or Windows-1252). {fix}", path)


class CutShort(FileFault):
    """A file shorter than its header says: ``have`` of ``need`` bytes."""

    def __init__(self, path, have: int, need: int, fix: str = REFETCH):
        self.have, self.need = have, need
        super().__init__(f"{path} is cut short: {have:,} of {need:,} bytes. {fix}", path)


class OutputInUse(FileFault):
    """An output path that holds something ftlab did not write there: nothing was written, nothing deleted.

    ``foreign``: the names in the folder that ftlab did not write beside its own earlier output; None when
    nothing there is ftlab's (a file, or a folder without ftlab's record of what it wrote).
    """

    def __init__(self, path, kind: str, foreign: list[str] | None = None, fix: str | None = None):
        path = Path(path)
        self.kind, self.foreign = kind, foreign
        fix = fix or (f"give the {kind} a path of its own, or pass replace=True to delete what is there and write "
                      f"the {kind} in its place.")
        if foreign:
            holds = f"holds {_listing(foreign)} beside the {kind} ftlab wrote there"
        elif path.is_dir() and not path.is_symlink():
            holds = f"holds {describe(path)}, not {_a(kind)} ftlab wrote"
        else:
            holds = f"is {describe(path)}, not {_a(kind)} ftlab wrote"
        super().__init__(f"{path} already exists and {holds}. Not writing over it: {fix}", path)


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _listing(names: list[str], shown: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def describe(path) -> str:
    """What is at ``path``, in a few words: "a file of 1,204 bytes", "an empty folder", "notes.txt, model/ and 3 more"."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return "a link to something that no longer exists"
    if not path.is_dir():
        size = path.stat().st_size
        return f"a file of {size:,} byte{'' if size == 1 else 's'}"
    names = [p.name + ("/" if p.is_dir() else "") for p in path.iterdir()]
    return _listing(names) if names else "an empty folder"


# errno -> what the learner reads: the three ways a disk refuses a write
DISK_REFUSALS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file grew past the largest file this disk or process may write (File too large)",
    errno.EDQUOT: "the disk quota is used up",
}


SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")  # numpy's tofile when the disk takes less than asked
RUST_IO = re.compile(r"\(os error (\d+)\)")  # safetensors' writer (Rust) reports the OS error only in its text


def disk_refusal(error: BaseException) -> str | None:
    """Why the disk refused the write that raised ``error`` (full, file too large, over quota), or None if it did not.

    Python's ``OSError``, numpy's short write (no errno, "N requested and M written") and safetensors' Rust
    error ("I/O error: File too large (os error 27)") all say it their own way; this reads the three.
    """
    if isinstance(error, WriteFailed):
        return None
    code = getattr(error, "errno", None) if isinstance(error, OSError) else None
    if code is None and (found := RUST_IO.search(str(error))):
        code = int(found.group(1))
    if code in DISK_REFUSALS:
        return DISK_REFUSALS[code]
    if isinstance(error, OSError) and code is None and (short := SHORT_WRITE.search(str(error))):
        return (f"the disk took {int(short.group(2)):,} of {int(short.group(1)):,} bytes of one write (it is full, or "
                "the file grew past the largest it may be)")
    return None


class WriteFailed(OSError):
    """A write the disk refused (``disk_refusal``); the partial output was removed and nothing was replaced."""

    def __init__(self, path, error: BaseException):
        self.message = (f"{path} could not be written: {disk_refusal(error)}. Nothing was replaced: what was at {path} "
                        "before is still there, and the partial copy was removed. Free space there (or in the "
                        "temporary folder), or write it to another disk.")
        found = RUST_IO.search(str(error))
        super().__init__(getattr(error, "errno", None) or (int(found.group(1)) if found else errno.EIO), self.message)
        self.filename = str(path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return _write_failed, (self.filename, self.errno, self.message)


def _write_failed(path, code, message):
    error = WriteFailed.__new__(WriteFailed)
    OSError.__init__(error, code, message)
    error.message, error.filename = message, path
    return error


def refused_by_disk(error: BaseException) -> bool:
    """True when ``error`` says the disk refused a write (``disk_refusal``): raise ``WriteFailed`` instead."""
    return disk_refusal(error) is not None
