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
