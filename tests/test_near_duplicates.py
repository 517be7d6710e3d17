"""Near duplicates: near_copies makes them as scraped data has them, and dedup(near=True) removes them (chapter 01)."""

import ftlab
from ftlab.data import dedup, near_copies


def test_near_copies_are_small_edits_of_an_earlier_row_and_say_which():
    rows = ftlab.data.arithmetic(200, seed=1)
    noisy, copy_of = near_copies(rows, share=0.1, seed=0)
    assert len(noisy) == 220 and len(copy_of) == 20
    for copy, original in copy_of.items():
        assert original < copy  # placed after its original
        a, b = noisy[original - 1]["messages"], noisy[copy - 1]["messages"]
        assert a[:-1] == b[:-1] and a[-1]["content"] != b[-1]["content"]
        assert abs(len(a[-1]["content"]) - len(b[-1]["content"])) <= len(" Hope this helps!")
    assert [r for i, r in enumerate(noisy, 1) if i not in copy_of] == rows  # the originals, in order, unchanged
    _, report = dedup(noisy, progress=False)
    assert report.exact_removed == 0  # exact matching sees none of them


def test_minhash_catches_near_copies_and_a_low_threshold_drops_distinct_rows():
    """The trade-off chapter 01 shows: 0.9 misses copies, 0.8 catches nearly all, 0.7 also drops distinct rows."""
    unique, _ = dedup(ftlab.data.arithmetic(3000, seed=0, duplicates=0.3), progress=False)  # chapter 01's rows
    noisy, copy_of = near_copies(unique.select(range(600)), share=0.1, seed=0)
    caught, wrong = {}, {}
    for threshold in (0.9, 0.8, 0.7):
        removed = dedup(noisy, near=True, threshold=threshold, progress=False)[1].duplicate_of
        caught[threshold] = sum(copy in removed for copy in copy_of)
        wrong[threshold] = sum(row not in copy_of for row in removed)
    assert caught[0.9] < caught[0.8] <= caught[0.7]
    assert caught[0.8] >= 0.9 * len(copy_of) and wrong[0.8] <= 2 and wrong[0.9] == 0
    assert wrong[0.7] > wrong[0.8]


def test_near_copies_in_chinese_are_found_too():
    rows = ftlab.data.arithmetic(200, lang="zh", seed=1)
    noisy, copy_of = near_copies(rows, share=0.1, seed=0, lang="zh")
    removed = dedup(noisy, near=True, threshold=0.8, progress=False)[1].duplicate_of
    assert sum(copy in removed for copy in copy_of) >= 0.8 * len(copy_of)


def _brute_force(texts, threshold, num_perm=128, seed=0):
    """The near search by its definition, every kept row compared (no bands): row -> (kept row, similarity)."""
    import numpy as np

    from ftlab.data.duplicates import _signatures

    class Silent:
        def update(self, n):
            pass

    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    signatures = _signatures(texts, 5, a, b, Silent())
    kept, dropped = [], {}
    for i in range(len(texts)):
        if kept:
            agree = (signatures[kept] == signatures[i]).mean(axis=1)
            if agree.max() >= threshold:
                dropped[i] = (kept[int(agree.argmax())], float(agree.max()))
                continue
        kept.append(i)
    return dropped


def test_the_banded_search_finds_what_comparing_every_pair_finds():
    """Rows like seed 001's (one template per category, so many rows are alike without being copies) with near
    copies, empty and short texts: the bands find the rows that comparing each row with every kept row drops."""
    from ftlab.data.duplicates import _near, key_texts

    rows, _ = near_copies(ftlab.data.arithmetic(700, "zh", seed=4) + ftlab.data.arithmetic(700, seed=4), share=0.1)
    texts = key_texts(ftlab.data.load(rows, quiet=True)) + ["", "", "ab", "ab"]
    for threshold in (0.7, 0.8, 0.9):
        banded, every = _near(texts, threshold, 5, 128, 0, False), _brute_force(texts, threshold)
        assert len(set(banded) ^ set(every)) <= max(1, 0.01 * len(every)), threshold  # LSH: >= 99% at the threshold
        assert all(banded[i] == every[i] for i in set(banded) & set(every) if every[i][1] >= threshold + 0.05)
    assert {len(texts) - 3} <= set(banded)  # the second empty text copies the first ("ab" twice likewise)


def test_near_search_on_20k_rows_like_seed_001s_takes_seconds_with_progress(monkeypatch, capsys):
    """Seed 001's 549k unique rows took ~15 minutes row by row (1.6 ms a row); the vectorised search does
    20k such rows in about a second of CPU (benchmarks/bench_dedup.py: 544k in 102 s of CPU)."""
    import time

    from ftlab.console import lines

    rows = ftlab.data.arithmetic(10_000, "zh", seed=5) + ftlab.data.arithmetic(10_000, seed=5)
    dataset = ftlab.data.load(rows, quiet=True)
    monkeypatch.setattr(lines, "SHOW_AFTER_S", 0.0)  # any pace: the lines are shown
    monkeypatch.setattr(lines, "LONG_S", 0.0)  # and each leaves its summary behind
    started = time.process_time()
    _, report = dedup(dataset, near=True, threshold=0.8, progress=True)
    cpu = time.process_time() - started
    assert report.near_removed > 0 and cpu < 3.0, cpu  # the row-by-row code took ~5 s of CPU here (1 s now)
    shown = capsys.readouterr().err
    assert "Near-duplicate search: signatures: 20000/20000 rows" in shown
    assert "Near-duplicate search: comparing: 20000/20000 rows" in shown
