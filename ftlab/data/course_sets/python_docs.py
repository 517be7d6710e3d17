"""Real English question -> answer rows from the Python standard library's own documentation, offline.

Every Python ships its documentation: the docstrings of its modules, classes and functions, and the
language reference's topics that ``help("with")`` prints (``pydoc_data.topics.topics``). ``python_docs``
turns them into instruction rows a model can learn something real from and a learner can check
against ``help(...)``:

- ``function``, ``method``, ``class``, ``exception``, ``module``: "What does `json.dumps` do?" ->
  the docstring's first paragraphs, cleaned of markup;
- ``signature``: "How do you call `textwrap.wrap`?" -> its signature, which has one right answer;
- ``which_module``: "Which standard-library module provides `Counter`?" -> the module and its import
  (only for names that one module alone provides);
- ``which_name``: a docstring's first sentence -> the name it documents (only for sentences that
  document one name alone);
- ``topic``: "Explain the `with` statement in Python." -> the first paragraphs of a section of the
  language reference; ``reference``: "What does `str.center(width[, fillchar])` do?" -> an entry of it.

Answers are cut at a sentence end to at most ``MAX_WORDS`` words, so that every row fits the
``max_length=256`` of a CPU round on SmolLM2 (most fit 128); an entry whose first sentence is longer,
or that has no prose, gives no row.
Each row is a chat row with the columns ``category`` (the kind of question above), ``family`` (the
module's chapter of the Library Reference, "language" for the reference), ``subject`` (the name or
section the row is about: ``split(rows, by=lambda row: row["subject"])`` keeps every question about
one name on one side) and ``source`` (the Python version and the license).

License: the text comes from CPython's source (docstrings, ``Lib/pydoc_data/topics.py``), distributed
under the Python Software Foundation License Version 2 (``PSF-2.0``, https://docs.python.org/3/license.html),
which allows copying, changing and redistributing it with its copyright notice.

Deterministic: the same Python version on the same operating system and the same ``seed`` give the
same rows. Another Python version gives slightly different rows, since its documentation differs (every
row's ``source`` names the version), and so does another operating system, in the few modules whose
functions differ between them (``os``, ``select``, ``signal``). The modules read are listed in
``FAMILIES``: those of the Library Reference a course reader meets, importable without side effects,
none deprecated; one this Python lacks (``sqlite3`` or ``ssl`` in some builds) is skipped. The
documentation is read in a fresh interpreter (``python -I``), as Python ships it: what pytest, Jupyter or
``-OO`` change in the learner's process does not change the rows. Building 2,600 rows takes a few
seconds (``benchmarks/bench_python_docs.py`` measures it), and shows its progress when slower.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import json
import random
import re
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

try:
    from pydoc_data.topics import topics as TOPICS
except ImportError:  # some distributions ship Python without it
    TOPICS = {}

# This file also runs as a script, in a fresh ``python -I`` where ftlab cannot be imported (``_entries``):
# the standard library only at its top; the functions of the learner's process import ftlab's modules.

LICENSE = "PSF-2.0"
LICENSE_NAME = "Python Software Foundation License Version 2"
LICENSE_URL = "https://docs.python.org/3/license.html"
# An answer's cap in words: every row, prompt and SmolLM2's template included, then fits max_length=256
# (tests/test_real_text.py checks it; benchmarks/bench_python_docs.py prints the lengths).
MAX_WORDS = 80
MIN_WORDS = 3

# The Library Reference's chapters and the modules read from each, in its order. An object that several
# modules offer is asked about under the first (``os.path.join``, not ``posixpath.join``).
FAMILIES: dict[str, tuple[str, ...]] = {
    "built-ins": ("builtins",),
    "text": ("string", "re", "difflib", "textwrap", "unicodedata"),
    "binary data": ("struct", "codecs"),
    "data types": ("datetime", "zoneinfo", "calendar", "collections", "collections.abc", "heapq", "bisect",
                   "array", "weakref", "types", "copy", "pprint", "reprlib", "enum", "graphlib"),
    "numbers and math": ("numbers", "math", "cmath", "decimal", "fractions", "random", "statistics"),
    "functional programming": ("itertools", "functools", "operator"),
    "files and directories": ("pathlib", "os.path", "stat", "filecmp", "tempfile", "glob", "fnmatch",
                              "linecache", "shutil", "fileinput"),
    "data persistence": ("pickle", "copyreg", "shelve", "marshal", "dbm", "sqlite3"),
    "compression and archives": ("zlib", "gzip", "bz2", "lzma", "zipfile", "tarfile"),
    "file formats": ("csv", "configparser", "tomllib", "netrc", "plistlib"),
    "cryptography": ("hashlib", "hmac", "secrets"),
    "operating system": ("os", "io", "time", "argparse", "getopt", "logging", "logging.handlers", "getpass",
                         "platform", "errno"),
    "concurrency": ("threading", "multiprocessing", "concurrent.futures", "subprocess", "sched", "queue",
                    "contextvars"),
    "networking": ("asyncio", "socket", "ssl", "select", "selectors", "signal", "mmap"),
    "internet data": ("email", "email.message", "email.utils", "json", "mailbox", "mimetypes", "base64",
                      "binascii", "quopri"),
    "markup": ("html", "html.parser", "xml.etree.ElementTree", "xml.dom.minidom", "xml.sax"),
    "internet protocols": ("webbrowser", "urllib.request", "urllib.parse", "urllib.error", "http",
                           "http.client", "http.server", "http.cookies", "ftplib", "poplib", "imaplib",
                           "smtplib", "uuid", "socketserver", "xmlrpc.client", "ipaddress"),
    "development tools": ("typing", "pydoc", "doctest", "unittest", "unittest.mock"),
    "debugging and profiling": ("bdb", "faulthandler", "pdb", "timeit", "trace", "tracemalloc", "cProfile",
                                "pstats"),
    "runtime services": ("sys", "sysconfig", "warnings", "dataclasses", "contextlib", "abc", "atexit",
                         "traceback", "gc", "inspect", "site"),
    "importing": ("importlib", "importlib.resources", "importlib.metadata", "zipimport", "pkgutil",
                  "modulefinder", "runpy"),
    "language services": ("ast", "symtable", "token", "keyword", "tokenize", "tabnanny", "pyclbr",
                          "py_compile", "compileall", "dis"),
    "internationalization": ("gettext", "locale"),
    "program frameworks": ("cmd", "shlex"),
}

CATEGORIES = ("function", "method", "class", "exception", "module", "signature", "which_module", "which_name",
              "topic", "reference")
# Several wordings of each question, one drawn per row (by ``seed``), so a model learns the question,
# not one sentence; ``{name}`` is the documented name, ``{text}`` a docstring's first sentence.
PROMPTS: dict[str, tuple[str, ...]] = {
    "function": ("What does `{name}` do?", "What does the Python function `{name}` do?",
                 "Explain what `{name}` does in Python.", "In Python, what is `{name}` for?"),
    "method": ("What does `{name}` do?", "What does the method `{name}` do in Python?",
               "Explain the Python method `{name}`."),
    "class": ("What is `{name}` in Python?", "What is the class `{name}` for?", "Describe the Python class `{name}`."),
    "exception": ("What does the exception `{name}` mean?", "What does `{name}` signal in Python?",
                  "What is the Python exception `{name}`?"),
    "module": ("What is the Python module `{name}` for?", "What does the `{name}` module provide?",
               "Describe Python's `{name}` module."),
    "signature": ("How do you call `{name}`? Give its signature.", "What is the signature of `{name}`?",
                  "What parameters does `{name}` take?"),
    "which_module": ("Which standard-library module provides `{name}`?", "How do I import `{name}` in Python?",
                     "Which Python module do you import `{name}` from?"),
    "which_name": ("Which Python standard-library name is documented as: \"{text}\"",
                   "Name the Python function, class or method whose documentation begins: \"{text}\"",
                   "What in Python's standard library does this: \"{text}\""),
    "topic": ("Explain {name} in Python.", "What does the Python language reference say about {name}?",
              "Describe {name} in Python."),
    "reference": ("What does `{name}` do?", "Explain `{name}` in Python.", "What is `{name}` for?"),
    "pdb": ("What does the pdb command `{name}` do?", "In the Python debugger, what does `{name}` do?"),
}


@dataclass(frozen=True)
class Entry:
    """One row before its wording is drawn: what it is about and its answer."""

    category: str
    family: str
    subject: str  # the documented name or section
    answer: str
    wording: str = ""  # the PROMPTS key, when it is not the category
    text: str = ""  # a docstring's first sentence (which_name)


# --- cleaning a docstring or a reference section into a short answer ---------------------------------

# Lines a docstring opens with that are not prose: a signature written by hand ("dumps(obj, ...) -> bytes"),
# imaplib's "(typ, [data]) = <instance>.fetch(...)", the ast nodes' grammar ("cmpop = Eq | NotEq | ...").
_PARENS = r"\((?:[^()]|\([^()]*\))*\)"  # an argument list, with one level of nested parentheses
_CODE_LINE = re.compile(rf"^\s*(\(.*\)\s*=\s*<\w+>\.)?[\w.]+{_PARENS}\s*(-{{1,2}}>[^.]*|--)?$|^\w+ = \S")
# A signature before the summary on the same line: "D.count(value) -- return ...", "zip(*its) --> Yield ...",
# "partial(func, ...) - new function ..."; after an arrow, the type it returns ("filter object.") goes too.
# "str -> Construct a date from ...": the types in and out, before the summary.
_SIGNATURE_PREFIX = re.compile(rf"^[\w.]+{_PARENS}\s*(?:-->?\s*(?:[\w ]*\bobject\.)?|--|-|:)\s*|^\w+ -> ")
_ROLE = re.compile(r":[\w:]+:`(~?)([^`<]*?)(?:\s*<[^>]*>)?`")  # :func:`~os.path.join` -> `join`, as Sphinx shows it
_DOUBLE_BACKTICKS = re.compile(r"``(.+?)``")
_EMPHASIS = re.compile(r"(?<![\w*\\`])\*([^\s*`][^*`]*?[^\s*`\\]|[^\s*`])\*(?![\w*`])")
_QUOTED_CODE = re.compile(r'"([^"\s][^"]*?)"')  # the reference's text form writes code literals in "..."
# A sentence about the code's history, not its use, ends an answer ("Copyright (C) 2001-2019 ...", "XXX ..."),
# and so does a slot wrapper's "x.__contains__(y) <==> y in x" (keyword.iskeyword is frozenset.__contains__).
_NOT_ABOUT_USE = re.compile(r"\bXXX\b|\bTODO\b|Copyright|All Rights Reserved|NO WARRANTY|Written by|\*\*\*|muck it up|<==>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\"'])")
# Notes about versions and where the source is: true, but not what the question asks; left out.
_NOTE = re.compile(r"^(New in version|Changed in version|Deprecated since version|Source code:)")


def _is_prose(lines: list[str]) -> bool:
    first = lines[0]
    return not (first[:1].isspace() or first.lstrip().startswith((">>>", "- ", "* ", "+ ", ":", "..", "|"))
                or re.match(r"^\d+[.)] ", first) or any(line[:1].isspace() for line in lines[1:])
                or any(re.fullmatch(r"[-=~^*]{3,}", line.strip()) for line in lines))


def _prose_paragraphs(text: str, skip_grammar: bool = False) -> list[str]:
    """The leading paragraphs of running text, each on one line.

    It stops at the first block that is not prose (code, a doctest, a list, a field, a heading), and at a
    paragraph that does not end a sentence, which introduces what follows ("... yields a 4-tuple" before
    an indented example): only the first paragraph, a summary line, may lack its full stop. With
    ``skip_grammar`` (the reference), a grammar rule (``assert_stmt ::= ...``) is passed over, and the
    colon that introduced it becomes a full stop.
    """
    blocks = [block.split("\n") for block in re.split(r"\n\s*\n", text.strip("\n"))]
    grammar = [skip_grammar and not _is_prose(lines) and "::=" in "\n".join(lines) for lines in blocks]
    paragraphs: list[str] = []
    for i, lines in enumerate(blocks):
        if grammar[i]:
            continue
        if not _is_prose(lines):
            break
        paragraph = " ".join(line.strip() for line in lines)
        if paragraph.endswith(":") and i + 1 < len(blocks) and grammar[i + 1]:
            *sentences, last = re.split(r"(?<=[.!?])\s+", paragraph)
            if len(last.split()) < 5:  # "Syntax:", "The syntax is:" say nothing once the rule is gone
                if not sentences:
                    continue
                paragraph = " ".join(sentences)
            else:
                paragraph = paragraph[:-1] + "."
        if not paragraph.endswith((".", "!", "?")):
            if paragraphs or paragraph.endswith((":", ",", ";")):
                break
            paragraph += "."
        paragraphs.append(paragraph)
    return paragraphs


def _unmarked(text: str, quoted_code: bool) -> str:
    """reST, and the reference's text form, as plain text with code in single backticks."""
    text = _ROLE.sub(lambda m: f"`{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}`", text)
    text = _DOUBLE_BACKTICKS.sub(r"`\1`", text)
    text = _EMPHASIS.sub(r"\1", text)
    if quoted_code:  # the reference's text form: code in "...", words cut at a hyphen, "-1" as "- 1", footnotes
        text = _QUOTED_CODE.sub(r"`\1`", text)
        text = re.sub(r"(?<=[a-z])- (?=[a-z])", "-", text)
        text = re.sub(r"=- (?=\d)", "=-", text)
        text = re.sub(r"\s?\[\d+\]", "", text)
        text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def short_answer(text: str, quoted_code: bool = False, max_words: int = MAX_WORDS) -> str | None:
    """The first paragraphs of ``text``, cleaned, cut at a sentence end to at most ``max_words`` words.

    None when the text has no leading prose, or its first sentence alone is longer than ``max_words``.
    """
    lines = text.strip("\n").split("\n")
    while lines and _CODE_LINE.match(lines[0]):
        lines.pop(0)
    if lines and _SIGNATURE_PREFIX.match(lines[0]):
        lines[0] = _SIGNATURE_PREFIX.sub("", lines[0])
        if not lines[0].strip():
            lines.pop(0)
    words: list[str] = []
    for paragraph in _prose_paragraphs("\n".join(lines), skip_grammar=quoted_code):
        for sentence in _SENTENCE_END.split(_unmarked(paragraph, quoted_code)):
            if _NOTE.match(sentence):
                continue
            if len(words) + len(sentence.split()) > max_words or _NOT_ABOUT_USE.search(sentence):
                return _finished(words)
            words += sentence.split()
    return _finished(words)


def _finished(words: list[str]) -> str | None:
    if len(words) < MIN_WORDS:
        return None
    if re.fullmatch(r"[a-z]+", words[0]):  # "add a note to the exception." once its signature is gone
        words[0] = words[0].capitalize()
    return " ".join(words)


def _first_sentence(answer: str) -> str:
    return _SENTENCE_END.split(answer, maxsplit=1)[0]


# --- docstrings ------------------------------------------------------------------------------------

def _members(module) -> list[tuple[str, object]]:
    """The module's public classes and functions, sorted by name: those in its ``__all__``, or, without one,
    those it defines itself (not what it imports)."""
    names = getattr(module, "__all__", None)
    members = []
    for name in sorted(set(names if names is not None else vars(module))):
        value = getattr(module, name, None)
        if (not name.startswith("_") and (isinstance(value, type) or _is_routine(value))
                and (names is not None or getattr(value, "__module__", None) == module.__name__)):
            members.append((name, value))
    return members


def _own_doc(obj) -> str | None:
    """``obj``'s own docstring (not one inherited from a base class, as ``inspect.getdoc`` gives)."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def _signature(function, name: str, method: bool) -> str | None:
    """``name(parameters)``, without a method's ``self`` or ``cls`` (as the Library Reference writes it)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some built-ins have none
        return None
    parameters = list(signature.parameters.values())
    if method and parameters and parameters[0].name in ("self", "cls"):
        signature = signature.replace(parameters=parameters[1:])
    text = f"{name}{signature}"
    # Kept: signatures with parameters to learn, none of them a default that changes between runs or
    # machines (<object at 0x...>, sys.maxsize), and short enough to learn.
    if not signature.parameters or "<" in text or re.search(r"\d{10}", text) or len(text) > 160:
        return None
    return text


def _is_routine(value) -> bool:
    return inspect.isroutine(value) or isinstance(value, (classmethod, staticmethod))


def _docstring_entries(family: str, module_name: str, module, seen: set[int], covered: set[str]) -> list[Entry]:
    entries = []
    doc = _own_doc(module)
    answer = short_answer(doc) if doc else None
    if answer:
        entries.append(Entry("module", family, module_name, answer))
    prefix = "" if module_name == "builtins" else f"{module_name}."
    for name, value in _members(module):
        if id(value) in seen:
            continue
        seen.add(id(value))
        qualified = prefix + name
        entries += _object_entries(family, qualified, value, covered)
        if isinstance(value, type):
            for attribute, member in sorted(vars(value).items()):
                # do_* are cmd's and pdb's commands, which the reference documents as commands
                if not attribute.startswith(("_", "do_")) and _is_routine(member):
                    entries += _object_entries(family, f"{qualified}.{attribute}", member, covered, method=True)
    return entries


def _object_entries(family: str, name: str, value, covered: set[str], method: bool = False) -> list[Entry]:
    if name in covered:  # the language reference documents it at more length
        return []
    function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
    doc = _own_doc(function)
    answer = short_answer(doc) if doc else None
    if answer is None:
        return []
    if isinstance(value, type):
        category = "exception" if issubclass(value, BaseException) else "class"
    else:
        category = "method" if method else "function"
    entries = [Entry(category, family, name, answer),
               Entry("which_name", family, name, f"`{name}`", text=_first_sentence(answer))]
    if category in ("function", "method"):
        signature = _signature(function, name, method and not isinstance(value, staticmethod))
        if signature:
            entries.append(Entry("signature", family, name, f"`{signature}`"))
    return entries


def _which_module_entries(modules: dict[str, tuple[str, object]]) -> list[Entry]:
    """"Which module provides X?" for public names that one module alone (of those read) provides, and that
    name no module (``keyword`` is a module, and a class of ``ast``) nor built-in."""
    providers: dict[str, list[str]] = {}
    for module_name, (_, module) in modules.items():
        if module_name != "builtins":
            for name, _ in _members(module):
                providers.setdefault(name.casefold(), []).append(module_name)
    entries = []
    for module_name, (family, module) in modules.items():
        for name, _ in _members(module) if module_name != "builtins" else ():
            # one module alone, whatever the case ("Signature" and "signature" read alike to dedup)
            if (len(providers[name.casefold()]) == 1 and not hasattr(modules["builtins"][1], name)
                    and name not in sys.stdlib_module_names):
                entries.append(Entry("which_module", family, name,
                                     f"The `{module_name}` module: `from {module_name} import {name}`."))
    return entries


# --- the language reference (pydoc's topics) ---------------------------------------------------------

_HEADING = re.compile(r"^(\S[^\n]*)\n([*=\-~^])\2{2,}$", re.M)
_DEFINITION = re.compile(r"^(\S[^\n]*\))\n\n((?:   [^\n]*\n|\n)+)", re.M)


def _reference_entries() -> list[Entry]:
    entries, titles, names = [], set(), set()
    for key in sorted(TOPICS):
        text = TOPICS[key]
        headings = list(_HEADING.finditer(text))
        for i, heading in enumerate(headings):
            title = heading.group(1).strip()
            body = text[heading.end():headings[i + 1].start() if i + 1 < len(headings) else len(text)]
            answer = short_answer(body, quoted_code=True)
            if answer and title.casefold() not in titles:
                titles.add(title.casefold())
                entries.append(Entry("topic", "language", _topic_title(title), answer))
        for definition in _DEFINITION.finditer(text):
            signature = re.sub(r"^(class|static|classmethod|abstractmethod) ", "", definition.group(1).strip())
            answer = short_answer(inspect.cleandoc(definition.group(2)), quoted_code=True)
            if answer and signature not in names:
                names.add(signature)
                wording = "pdb" if key == "debugger" and not signature.startswith("pdb.") else ""
                entries.append(Entry("reference", "language", signature, answer, wording=wording))
    return entries


def _topic_title(title: str) -> str:
    """'The "with" statement' -> 'the `with` statement', 'Code Objects' -> 'code objects': as in a question.

    A word in title case is lowered unless it is code, a built-in name (``None``, ``Ellipsis``) or Python.
    """
    def lowered(match: re.Match) -> str:
        word = match.group(0)
        return word if word == "Python" or hasattr(builtins, word) else word.lower()

    title = re.sub(r"\*(\S+)\*", r"`\1`", _QUOTED_CODE.sub(r"`\1`", title))
    return "".join(part if part.startswith("`") else re.sub(r"\b[A-Z][a-z]+\b", lowered, part)
                   for part in re.split(r"(`[^`]*`)", title))


def _covered_names(entries: list[Entry]) -> set[str]:
    """Methods the reference documents at more length (``str.center(width[, fillchar])`` -> ``str.center``).

    Only dotted names: ``len(dictview)`` documents a use of ``len``, not ``len`` itself.
    """
    return {name for entry in entries if entry.category == "reference" and "." in (name := entry.subject.split("(")[0])}


# --- the set ---------------------------------------------------------------------------------------

def _read_all(report=lambda: None) -> list[Entry]:
    """Every entry this Python's documentation gives, in a fixed order (modules as listed, names sorted).

    ``report()`` is called after each module read. Run in a fresh interpreter (``_entries``).
    """
    reference = _reference_entries()
    covered = _covered_names(reference)
    modules: dict[str, tuple[str, object]] = {}
    entries: list[Entry] = []
    seen: set[int] = set()
    for family, name in _LISTED:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a deprecation notice on import is not the learner's concern
                module = importlib.import_module(name)
        except ImportError:  # not built into this Python (sqlite3 or ssl in some builds)
            module = None
        if module is not None:
            modules[name] = (family, module)
            entries += _docstring_entries(family, name, module, seen, covered)
        report()
    return _unambiguous(entries + _which_module_entries(modules) + reference)


_LISTED = [(family, name) for family, names in FAMILIES.items() for name in names]


@functools.lru_cache(maxsize=1)
def _entries() -> tuple[Entry, ...]:
    """``_read_all`` run in a fresh interpreter, so that the rows are the documentation as Python ships it.

    In the learner's process, pytest, Jupyter or a library may have replaced standard functions
    (``input``, ``getpass.getpass``, ``pdb.set_trace``) or run Python with ``-OO``, which strips every
    docstring; a fresh ``python -I`` (isolated: no ``PYTHONPATH``, no current folder, so a learner's own
    ``json.py`` cannot stand in for the standard one) sees none of that, and the learner's process imports
    none of the modules read. The child reports each module read, then the entries as JSON.
    """
    from ftlab.console.lines import Progress

    command = [sys.executable, "-I", "-X", "utf8", str(Path(__file__).resolve())]
    failed = f"python_docs() reads the documentation in a fresh Python ({' '.join(command)}), which failed"
    # stderr to a file: a pipe nobody reads until the end could fill and stall the child
    with (tempfile.TemporaryFile("w+", encoding="utf-8") as stderr,
          Progress(len(_LISTED), "Reading the standard library's documentation", "modules") as progress):
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, encoding="utf-8")
        except OSError as error:  # no interpreter at sys.executable (an embedded Python)
            raise RuntimeError(f"{failed} to start: {error}") from error
        with child:
            payload = ""
            for line in child.stdout:
                if line.startswith("["):
                    payload = line
                else:
                    progress.update()
        stderr.seek(0)
        errors = stderr.read()
    if child.returncode or not payload:
        raise RuntimeError(f"{failed} (exit code {child.returncode}):\n{errors[-3000:]}")
    return tuple(Entry(**fields) for fields in json.loads(payload))


def _unambiguous(entries: list[Entry]) -> list[Entry]:
    """Drop ``which_name`` entries whose sentence documents several names: they have no one right answer."""
    counts: dict[str, int] = {}
    for entry in entries:
        if entry.category == "which_name":
            counts[entry.text.casefold()] = counts.get(entry.text.casefold(), 0) + 1
    return [entry for entry in entries if entry.category != "which_name" or counts[entry.text.casefold()] == 1]


def _row(entry: Entry, rng: random.Random, source: str) -> dict:
    from ftlab.data.formats import chat_row

    prompt = rng.choice(PROMPTS[entry.wording or entry.category]).format(name=entry.subject, text=entry.text)
    return chat_row((prompt, entry.answer), category=entry.category, family=entry.family, subject=entry.subject,
                    source=source)


def _drawn(rows: list[dict], n: int, rng: random.Random) -> list[dict]:
    """``n`` rows taken in turn from each category (a category that runs out leaves its turns to the others)."""
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    queues = [rng.sample(group, len(group)) for _, group in sorted(by_category.items())]
    drawn: list[dict] = []
    while len(drawn) < n:
        for queue in queues:
            if queue and len(drawn) < n:
                drawn.append(queue.pop())
    rng.shuffle(drawn)
    return drawn


def python_docs(n: int | None = 2600, seed: int = 0) -> list[dict]:
    """``n`` question -> answer chat rows from the Python standard library's documentation (PSF-2.0), offline.

    ``n``: how many rows (2,600 by default, the size of seed 003's Alpaca set; None: every row this Python's
    documentation gives, several times as many). The categories take turns, so the small ones
    (``topic``, ``reference``, ``module``, ``exception``) come whole and the others share the rest.
    ``seed`` draws the rows, each question's wording and their order. The same Python version (on the same
    operating system) and ``seed`` give the same rows; each row's ``source`` names the Python version and the license (see the module's
    docstring). Prompts are unique (``ftlab.data.dedup`` by prompt), so ``ftlab.data.split(rows)`` holds
    out an eval set whose prompts never occur in train; ``split(rows, by=lambda row: row["subject"])``
    also keeps every question about one name on one side.
    """
    from ftlab.data.duplicates import dedup

    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise ValueError(f"n must be a whole number of rows, such as 2600 (or None for all), not {n!r}")
    entries = _entries()
    rng = random.Random(f"ftlab-python-docs-{seed}")
    source = f"Python {sys.version.split()[0]} documentation ({LICENSE})"
    rows = [_row(entry, rng, source) for entry in entries]
    unique, _ = dedup(rows, key="prompt", progress=False)
    rows = unique.to_list()
    if n is None:
        return rng.sample(rows, len(rows))
    if not 0 < n <= len(rows):
        raise ValueError(f"python_docs() has {len(rows):,} rows on Python {sys.version.split()[0]}; ask for 1 to "
                         f"{len(rows):,} (or n=None for all)")
    return _drawn(rows, n, rng)


if __name__ == "__main__":  # how _entries runs it, in a fresh interpreter: one line per module read, then JSON
    found = _read_all(lambda: print("read", flush=True))
    print(json.dumps([asdict(entry) for entry in found]))
