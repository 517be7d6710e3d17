"""How fast ``ftlab.data.dedup`` removes exact and near duplicates at seed 001's scale (809,993 rows).

Seed 001 had 809,993 short arithmetic word problems, 548,942 unique; its near-duplicate search (MinHash,
threshold 0.8) took 1.6 ms a row on 2 cores with ftlab's first, row-by-row code: about 15 minutes for the
rows left after exact dedup. The target: the near search on ~550k such rows in at most 2 minutes on 2 cores.

Rows: ``ftlab.data.arithmetic`` (seed 001's categories, half Chinese, half English: short Q&A, one template
per category, so many rows are alike without being copies), with seed 001's share of exact copies (32%)
and 1% near copies (``near_copies``: a sign-off, a typo, a changed final mark). Seeded: the same rows each
run. Times: building the Dataset (``ftlab.data.load``, for scale), exact dedup, and the near search alone
(``dedup(near=True)`` minus the exact pass it starts with), each as rows/s, wall and CPU seconds (CPU is
what an idle machine's wall time would be: on a shared machine the wall time also counts other work).

Libraries that do MinHash (measured here where installed; not dependencies of ftlab):
- rensa (Rust): ``RMinHash`` builds signatures faster than numpy, but ftlab's signatures are not the
  slow part (see the lines printed), and rensa's hash functions are its own: using it would change which
  rows are found, add a compiled dependency for one function, and leave the banding and the in-order
  comparison that keeps the first copy (the part that grows with the rows) to ftlab anyway.
- datasketch (pure Python): one ``MinHash.update`` per shingle, slower than ftlab's vectorised signatures.
- text-dedup: a command-line pipeline over Hugging Face datasets that links every pair in a bucket
  (union-find) without checking their similarity; ftlab keeps the first copy and reports what each
  dropped row copies, which chapter 01 shows.

    python benchmarks/bench_dedup.py [--rows 100000 800000] [--threshold 0.8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

COPIES = 1 - 548_942 / 809_993  # seed 001's share of exact copies


def seed_001_like(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows like seed 001's: arithmetic word problems, half Chinese and half English, 32% exact copies,
    1% near copies."""
    from ftlab.data import arithmetic, near_copies

    rows = arithmetic(n // 2, "zh", seed=seed, duplicates=COPIES) + arithmetic(n - n // 2, "en", seed=seed,
                                                                                duplicates=COPIES)
    base = rows[: round(n / 1.01)]
    noisy, _ = near_copies(base, share=0.01, seed=seed, lang="zh")
    return noisy[:n]


def timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def line(what: str, rows: int, wall: float, cpu: float) -> str:
    return f"  {what:<34} {rows:>9,} rows  {rows / wall:>9,.0f} rows/s  wall {wall:6.1f} s  cpu {cpu:6.1f} s"


def other_libraries(texts: list[str], shingle_size: int = 5) -> None:
    """Signatures alone (128 hash functions over character shingles) from ftlab and, where installed, rensa
    and datasketch, on the same texts."""
    import numpy as np

    from ftlab.data.duplicates import _signatures

    class Silent:
        def update(self, n):
            pass

    rng = np.random.default_rng(0)
    a = rng.integers(1, 2**63, size=128, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=128, dtype=np.uint64)
    _, wall, cpu = timed(lambda: _signatures(texts, shingle_size, a, b, Silent()))
    print(line("signatures: ftlab (numpy)", len(texts), wall, cpu))

    def shingles(text):
        return [text[i:i + shingle_size] for i in range(max(1, len(text) - shingle_size + 1))]

    try:
        from rensa import RMinHash
    except ImportError:
        print("  signatures: rensa                  not installed (pip install rensa to compare)")
    else:
        def with_rensa():
            for text in texts:
                minhash = RMinHash(num_perm=128, seed=0)
                minhash.update(shingles(text))
                minhash.digest()
        _, wall, cpu = timed(with_rensa)
        print(line("signatures: rensa (Rust)", len(texts), wall, cpu))
    try:
        from datasketch import MinHash
    except ImportError:
        print("  signatures: datasketch             not installed (pip install datasketch to compare)")
    else:
        few = texts[:20_000]  # pure Python: a sample is enough to know its pace

        def with_datasketch():
            for text in few:
                minhash = MinHash(num_perm=128, seed=0)
                minhash.update_batch([s.encode("utf-8") for s in shingles(text)])
        _, wall, cpu = timed(with_datasketch)
        print(line("signatures: datasketch (Python)", len(few), wall, cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 800_000])
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--libraries", action="store_true", help="also time rensa / datasketch signatures")
    args = parser.parse_args()

    from ftlab.data import dedup, load
    from ftlab.data.duplicates import key_texts

    print(f"cores: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for n in args.rows:
        rows = seed_001_like(n)
        dataset, wall, cpu = timed(lambda rows=rows: load(rows, quiet=True))
        print(f"{n:,} rows like seed 001's (threshold {args.threshold}):")
        print(line("load (rows -> Dataset)", n, wall, cpu))
        (unique, report), wall, cpu = timed(lambda dataset=dataset: dedup(dataset, progress=False))
        print(line(f"exact dedup ({report.exact_removed:,} copies)", n, wall, cpu))
        exact_wall, exact_cpu = wall, cpu
        (_, report), wall, cpu = timed(lambda dataset=dataset: dedup(dataset, near=True, threshold=args.threshold,
                                                                      progress=False))
        print(line(f"near search ({report.near_removed:,} near copies)", len(unique), wall - exact_wall,
                   cpu - exact_cpu))
        if args.libraries:
            other_libraries(key_texts(unique))
        print(f"  load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
