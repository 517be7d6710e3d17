"""Running an exported GGUF file in llama.cpp itself, from Python: does the file answer as the model did?

llama.cpp comes from the npm package node-llama-cpp, which ships llama.cpp built for each platform (no C++
build, unlike PyPI's llama-cpp-python, which compiles llama.cpp on install). ``install()`` puts it in
``folder()`` (``$FTLAB_LLAMA_CPP``, or ``llama-cpp`` in ftlab's cache), with npm, once (~85 MB, seconds):

    python -m ftlab.export.llama_cpp install

It needs Node.js 20 or newer and npm. ``missing()`` says what is missing here and how to get it (None when
llama.cpp is ready). ``generate(files, prompts)`` runs ``llama_cpp.mjs`` (beside this module) in Node: it
loads each file, tokenizes each prompt as llama.cpp does, and generates greedily (temperature 0) up to an
end-of-turn token. ``answers(files, tokenizer, prompts)`` builds the prompts with the model's own chat template
(``ftlab.templates.Template``), as ``ftlab.evaluation.answers`` does for transformers, and decodes the answers.
llama.cpp runs a small model, or any model on two cores, on one CPU thread (``generate`` says why).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ftlab.files.cache import cache_root
from ftlab.machine import SMALL_MODEL_PARAMS
from ftlab.templates.template import Template

VERSION = "3.22.1"  # node-llama-cpp's version: the one tests/test_llama_cpp.py runs in CI
NODE_MAJOR = 20  # node-llama-cpp 3 needs Node.js 20 or newer
SCRIPT = Path(__file__).with_name("llama_cpp.mjs")
INSTALL = "python -m ftlab.export.llama_cpp install"
# the prebuilt binaries for this machine: only these are installed (all of them, with CUDA and Vulkan, are ~700 MB)
BINARIES = {("linux", "x86_64"): "linux-x64", ("linux", "aarch64"): "linux-arm64", ("darwin", "arm64"): "mac-arm64-metal",
            ("darwin", "x86_64"): "mac-x64", ("win32", "amd64"): "win-x64"}


class LlamaCppError(RuntimeError):
    """llama.cpp is not installed here, or it failed on a file; the message says what to do."""


@dataclass(frozen=True)
class Generated:
    """One prompt in llama.cpp: its tokens as llama.cpp read them, the tokens generated (an end token included), the text."""

    tokens: list[int]
    generated: list[int]
    text: str


def folder() -> Path:
    """Where node-llama-cpp is installed: ``$FTLAB_LLAMA_CPP``, or ``llama-cpp`` in ftlab's cache."""
    return Path(os.environ.get("FTLAB_LLAMA_CPP") or cache_root() / "llama-cpp")


def _node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        found = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(found.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def missing(where=None) -> str | None:
    """Why llama.cpp cannot run here, and how to make it run; None when it can."""
    major = _node_major()
    if major is None:
        return (f"llama.cpp runs here through Node.js (node-llama-cpp), and there is no `node` on the PATH: install "
                f"Node.js {NODE_MAJOR} or newer (https://nodejs.org, or your system's package manager), then {INSTALL}")
    if major < NODE_MAJOR:
        return f"node-llama-cpp needs Node.js {NODE_MAJOR} or newer, and this one is {major}: update Node.js, then {INSTALL}"
    where = Path(where or folder())
    if not (where / "node_modules" / "node-llama-cpp" / "package.json").exists():
        return f"node-llama-cpp is not installed in {where}: {INSTALL} (npm, ~85 MB, once)"
    return None


def install(where=None, progress: bool = True) -> Path:
    """Install node-llama-cpp (``VERSION``) and this machine's prebuilt llama.cpp into ``where`` with npm."""
    where = Path(where or folder())
    npm = shutil.which("npm")
    major = _node_major()
    if npm is None or major is None or major < NODE_MAJOR:
        raise LlamaCppError(f"installing node-llama-cpp needs Node.js {NODE_MAJOR} or newer and npm on the PATH "
                            f"(found node {major or 'none'}, npm {'yes' if npm else 'none'}): https://nodejs.org")
    binary = BINARIES.get((sys.platform, platform.machine().lower()))
    packages = [f"node-llama-cpp@{VERSION}", *([f"@node-llama-cpp/{binary}@{VERSION}"] if binary else [])]
    where.mkdir(parents=True, exist_ok=True)
    if not (where / "package.json").exists():
        (where / "package.json").write_text('{"private": true, "description": "llama.cpp for ftlab"}\n')
    if progress:
        print(f"Installing {' and '.join(packages)} into {where} with npm ...", flush=True)
    started = time.perf_counter()
    # prebuilt binaries only: no install scripts (they would offer to build llama.cpp), no other platforms' binaries
    command = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact",
               *(["--omit=optional"] if binary else []), *packages]
    done = subprocess.run(command, cwd=where, capture_output=True, text=True)
    if done.returncode != 0:
        raise LlamaCppError(f"npm install failed in {where} (exit {done.returncode}):\n{done.stderr[-2000:]}")
    if progress:
        print(f"  installed in {time.perf_counter() - started:.0f} s", flush=True)
    return where


def generate(files, prompts: list[str], max_tokens: int = 48, threads: int | None = None, timeout: float = 1800,
             where=None) -> list[list[Generated]]:
    """Each file's greedy continuation of each prompt text (special tokens written out) in llama.cpp.

    ``threads``: llama.cpp's CPU threads (``FTLAB_CPU_THREADS`` in the environment wins). By default one for a
    small model, or on a machine of two cores, else every core. llama.cpp's threads spin while they wait for each
    other, as torch's do (``ftlab.machine.use_cpu_threads``): SmolLM2's three files answering 4 prompts (24 tokens
    each) took 8-15 s on one thread and 14 s on two, but 203 s on two beside other busy processes (2 cores, load 4-5).
    """
    where = Path(where or folder())
    if (why := missing(where)) is not None:
        raise LlamaCppError(why)
    files = [str(Path(f).resolve()) for f in ([files] if isinstance(files, str | os.PathLike) else files)]
    for file in files:
        if not Path(file).is_file():
            raise LlamaCppError(f"{file}: no such GGUF file (ftlab.write_gguf writes one)")
    if threads is None:  # an f16 file holds two bytes a parameter, a quantized one fewer
        small = max(Path(f).stat().st_size for f in files) < 2 * SMALL_MODEL_PARAMS
        cores = os.cpu_count() or 1
        threads = int(os.environ.get("FTLAB_CPU_THREADS") or (1 if small or cores <= 2 else cores))
    longest = max((len(p.encode()) for p in prompts), default=0)  # a token holds at least one byte
    job = {"files": files, "prompts": list(prompts), "max_tokens": max_tokens, "threads": threads,
           "context_size": longest + max_tokens + 8, "modules": str(where / "node_modules")}
    try:
        done = subprocess.run([shutil.which("node") or "node", str(SCRIPT)], input=json.dumps(job), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise LlamaCppError(f"llama.cpp did not finish within {timeout:.0f} s on {len(files)} file(s) and "
                            f"{len(prompts)} prompt(s)") from error
    if done.returncode != 0:
        raise LlamaCppError(f"llama.cpp failed (node exit {done.returncode}):\n{done.stderr[-3000:]}")
    by_file = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            by_file[record["file"]] = [Generated(r["tokens"], r["generated"], r["text"]) for r in record["results"]]
    return [by_file[file] for file in files]


def answers(files, tokenizer, prompts: list, max_new_tokens: int = 48, template=None, **options) -> list[list[str]]:
    """Each file's answers to ``prompts`` (questions, or lists of chat turns), asked in the model's chat format.

    ``tokenizer`` is the model's own (it writes the prompts and decodes the answers as ``ftlab.evaluation``
    does for transformers).
    """
    template = template or Template.chat(tokenizer)
    texts = [template.prompt(p) for p in prompts]
    stops = set(template.stop_token_ids)
    runs = generate(files, texts, max_new_tokens, **options)
    return [[tokenizer.decode([t for t in g.generated if t not in stops], skip_special_tokens=True).strip()
             for g in run] for run in runs]


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        install()
        print("ready" if missing() is None else missing())
    else:
        print(missing() or f"llama.cpp is ready in {folder()} (node-llama-cpp {VERSION})")
