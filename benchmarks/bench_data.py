"""How fast ftlab.data handles an Alpaca-sized data set (52,000 rows) on a CPU.

Builds 52,000 synthetic Alpaca rows of realistic length (instructions around 40 words, outputs
around 100, an input on 40% of rows, a few duplicates), writes them to a JSONL file, then times:
load (read, detect, validate, convert), chat template + tokenise (batched ``Dataset.map`` with
ftlab's tiny tokenizer: the template rendered per batch, then tokenised in one Rust call), exact
dedup, and the token-length report. The tiny tokenizer (1,024 tokens) splits English into ~500
tokens a row, about 2.5x what TinyLlama's tokenizer makes, so the tokenising steps are a worst case.
Target: under 30 s in total on a 2-core machine.

    python benchmarks/bench_data.py [--rows 52000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

WORDS = ("the of and to a in is you that it he was for on are as with his they at be this have from or one had "
         "by word but not what all were we when your can said there use an each which she do how their if will "
         "up other about out many then them these so some her would make like him into time has look two more "
         "write go see number no way could people my than first water been call who oil its now find long down "
         "day did get come made may part explain describe list summarize create generate classify rewrite "
         "sentence paragraph example following given text article story poem email data model learning network "
         "energy climate health science history computer program function value system process result "
         "important different possible simple common natural social economic").split()


def _sentence(rng: random.Random, mean_words: int) -> str:
    n = max(3, int(rng.gauss(mean_words, mean_words / 3)))
    words = rng.choices(WORDS, k=n)
    return " ".join(words).capitalize() + "."


def alpaca_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = [{"instruction": _sentence(rng, 40), "input": _sentence(rng, 15) if rng.random() < 0.4 else "",
             "output": _sentence(rng, 100)} for _ in range(n)]
    for i in rng.sample(range(n), n // 100):  # ~1% exact duplicates, so dedup has something to find
        rows[i] = dict(rows[rng.randrange(n)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=52_000)
    args = parser.parse_args()

    from ftlab.data import dedup, load
    from ftlab.data.course_sets.synthetic import instructions
    from ftlab.models.tiny import build_tokenizer
    from ftlab.templates import length_report

    tokenizer = build_tokenizer(instructions(200, "skills"))
    rows = alpaca_rows(args.rows)
    timings: list[tuple[str, float, float]] = []  # (step, wall seconds, CPU seconds of all threads)

    def timed(step, run):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        timings.append((step, time.perf_counter() - wall, time.process_time() - cpu))
        return result

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "alpaca.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        print(f"{args.rows:,} Alpaca rows, {path.stat().st_size / 1e6:.1f} MB of JSONL, "
              f"{os.cpu_count()} CPU core(s)\n")

        dataset = timed("load (read + detect + validate + convert)", lambda: load(path))

        def tokenise(batch):
            # Render the template for the batch, then tokenise it in Rust in one call (no offsets): the
            # same ids as apply_chat_template(tokenize=True) row by row, several times faster.
            texts = tokenizer.apply_chat_template(batch["messages"], tokenize=False)
            encodings = tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)
            return {"input_ids": [encoding.ids for encoding in encodings]}

        tokenised = timed("chat template + tokenise (Dataset.map, batched)", lambda: dataset.map(
            tokenise, batched=True, batch_size=1000, remove_columns=dataset.column_names,
            desc="Chat template + tokenise"))
        unique, report = timed("exact dedup", lambda: dedup(dataset))
        lengths = timed("length report", lambda: length_report(dataset, tokenizer, max_length=512, batch_size=8))

    print(f"\n{report}\n\n{lengths}\n")
    assert len(tokenised) == len(dataset) == args.rows
    assert [len(ids) for ids in tokenised[:100]["input_ids"]] == lengths.lengths[:100]
    first = tokenizer.apply_chat_template(dataset[0]["messages"], tokenize=True)["input_ids"]
    assert tokenised[0]["input_ids"] == first  # the fast path gives exactly the template's tokens
    total, cpu_total = sum(t[1] for t in timings), sum(t[2] for t in timings)
    print(f"{'step':<50} {'wall':>8}  {'rows/s':>9}  {'CPU (all threads)':>17}")
    for step, seconds, cpu in timings:
        print(f"{step:<50} {seconds:6.2f} s  {args.rows / seconds:>9,.0f}  {cpu:15.2f} s")
    print(f"{'total':<50} {total:6.2f} s  {args.rows / total:>9,.0f}  {cpu_total:15.2f} s   (target < 30 s wall)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (other processes slow it down)")


if __name__ == "__main__":
    main()
