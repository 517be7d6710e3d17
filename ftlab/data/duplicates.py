"""Remove duplicate rows, exact and near, and show which items were repeated most.

Duplicates are common in scraped and generated sets (seed 001: 809,993 rows, 548,942 unique; one
prompt, "将分数 5/6 进行简化。", appeared 480 times). A repeated row is trained on again and again: the
model memorises it, and if copies land on both sides of a train/eval split, eval scores lie.

**Exact** duplicates are rows whose text is equal after normalising case and whitespace, either of the
whole conversation (``key="conversation"``, the default) or of the prompt alone (``key="prompt"``:
then one answer per prompt is kept, whichever came first).

**Near** duplicates (``near=True``) use MinHash with LSH banding, written with numpy alone:
each text becomes its set of character ``shingle_size``-grams (so it works for Chinese, which has no
spaces), ``num_perm`` random hash functions give a signature whose share of equal entries estimates
the Jaccard similarity of two sets, and bands (random sets of a signature's entries) are keys so that
only texts sharing a band are compared. Rows are visited in order; a row whose estimated similarity to
an already kept row is at least ``threshold`` is dropped. Signatures and band keys are computed for
thousands of rows at once; only rows that share a band with another are then visited one by one
(``benchmarks/bench_dedup.py`` times it on rows like seed 001's). Limits: the similarity is an estimate
(about +/-0.03 with 128 hash functions), so pairs right at the threshold can go either way; LSH misses
up to 1% of the pairs whose estimate is at the threshold (fewer above it, more below); memory holds the
signatures (1 KB a row: 0.55 GB for seed 001's 549k unique rows); it sees characters, not meaning, so
paraphrases are not found, and in
short texts one changed character changes many shingles ("What is 2+3?" vs "What is 2+4?" are, rightly,
not near-duplicates); the result depends on row order (the first of a group is kept).

``near_copies`` adds near copies (a sign-off, a typo, a changed final mark) to rows and says which row
each copies, so what the near search finds at a threshold can be counted (chapter 01 does).
"""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from dataclasses import dataclass, field

from ftlab.console.lines import Progress
from ftlab.data.formats import conversation_text, normalise, prompt_text
from ftlab.data.loading import chat_dataset

FNV_PRIME = 1_099_511_628_211  # FNV's 64-bit prime: spreads code points in the rolling hash
RECALL = 0.99  # the chance that two rows whose signatures agree on the threshold's share meet in a band
MOST_BANDS = 32  # a band is a dict look-up per row: more of them cost more than the shorter bands save


def key_texts(dataset, key="conversation") -> list[str]:
    """The normalised text each row is compared by: its conversation, its prompt, or ``key(row)``."""
    messages = dataset.select_columns(["messages"]).to_list()
    if key == "conversation":
        return [conversation_text(row) for row in messages]
    if key == "prompt":
        return [prompt_text(row) for row in messages]
    if callable(key):
        return [normalise(str(key(row))) for row in dataset]
    raise ValueError(f"key must be 'conversation', 'prompt' or a function of a row, not {key!r}")


@dataclass
class DedupReport:
    """What ``dedup`` removed. ``print`` it or call ``.show()``."""

    rows_before: int
    rows_after: int
    exact_removed: int
    near_removed: int
    key: str
    most_repeated: list[tuple[str, int]]  # (normalised text, copies) of the 10 most repeated items
    near_examples: list[tuple[str, str, float]] = field(default_factory=list)  # (kept, dropped, similarity)
    duplicate_of: dict[int, int] = field(default_factory=dict)  # dropped row -> the kept row (1-based)

    def __repr__(self) -> str:
        lines = [f"Dedup by {self.key}: {self.rows_before:,} rows -> {self.rows_after:,} "
                 f"({self.exact_removed:,} exact and {self.near_removed:,} near duplicates removed)"]
        if self.most_repeated:
            lines.append("Most repeated:")
            lines += [f"  {count:>6,} x  {_short(text)}" for text, count in self.most_repeated]
        if self.near_examples:
            lines.append("Near duplicates, e.g.:")
            for kept, dropped, similarity in self.near_examples:
                start = _first_difference(kept, dropped)
                lines.append(f"  {similarity:.2f}  kept:    {_window(kept, start)}\n"
                             f"        dropped: {_window(dropped, start)}")
        return "\n".join(lines)

    def show(self) -> None:
        print(repr(self))


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _window(text: str, at: int, width: int = 60) -> str:
    """The part of ``text`` around position ``at``, where two near-duplicates start to differ."""
    start = max(0, at - width // 3)
    return ("..." if start else "") + _short(text[start:], width)


def _bands(threshold: float, num_perm: int, most: int = MOST_BANDS) -> tuple[int, int]:
    """(entries per band, bands): the longest bands, at most ``most`` of them, such that two signatures that
    agree on a ``threshold`` share of their ``num_perm`` entries share a band with a chance of 99% or more.

    A band is a random set of entries (not a slice): ``num_perm`` need not divide into them, and longer
    bands let fewer unrelated rows meet. Rows from one template (seed 001's arithmetic problems) agree on
    about half their entries; at 0.8 they met in one band in four entries of 32 (the plain slices of 128),
    a number of pairs that grows with the square of the rows: 8 entries in 26 bands meet ~30x less often.
    """
    agree = math.ceil(threshold * num_perm - 1e-9)  # entries a pair at the threshold agrees on
    best = (1, 1)
    for width in range(1, num_perm + 1):
        chance = math.prod((agree - i) / (num_perm - i) for i in range(width))  # all of a band's entries agree
        count = 1 if chance >= 1 else math.ceil(math.log(1 - RECALL) / math.log1p(-chance)) if chance > 0 else most + 1
        if count > most:  # longer bands only meet less often
            break
        best = (width, count)
    return best


def _near(texts: list[str], threshold: float, shingle_size: int, num_perm: int, seed: int,
          progress: bool | None) -> dict[int, tuple[int, float]]:
    """{index dropped: (index kept, estimated similarity)} over ``texts`` (greedy, in order).

    Vectorised: the signatures of a chunk of texts at a time (``_signatures``), each band of a signature
    as one 64-bit key (``_band_keys``); only rows that share a band key with another row are then visited
    in order, in Python, against the kept rows of their buckets (``_greedy``).
    """
    import numpy as np  # only the near-duplicate search needs it: ftlab.data itself loads without numpy

    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)  # odd multipliers
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    width, count = _bands(threshold, num_perm)
    bands = np.array([np.sort(rng.choice(num_perm, width, replace=False)) for _ in range(count)])
    show = progress is not False
    with Progress(len(texts), "Near-duplicate search: signatures", "rows", show) as shown:
        signatures = _signatures(texts, shingle_size, a, b, shown)
    keys = _band_keys(signatures, bands)
    with Progress(len(texts), "Near-duplicate search: comparing", "rows", show) as shown:
        return _greedy(signatures, keys, threshold, shown)


def _chunk_shingles(texts: list[str], size: int):
    """The 64-bit hashes of the character ``size``-grams of ``texts`` in one array, each text's in a run (repeats
    kept: a minimum does not mind), and where each run starts. One rolling hash over the texts joined end to
    end; a text shorter than ``size`` is one shingle of its whole length, an empty text the hash 0."""
    import numpy as np

    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    points = np.concatenate([points, np.zeros(size, dtype=np.uint64)])  # windows may run past the end
    widths = np.clip(lengths, 1, size)  # a short text: one shingle as long as itself
    counts = lengths - widths + 1 + (lengths == 0)  # an empty text: one shingle too
    runs = np.cumsum(counts) - counts  # where each text's shingles start in the result
    total = int(counts.sum())
    window = np.repeat(np.cumsum(lengths) - lengths, counts) + np.arange(total) - np.repeat(runs, counts)
    width = np.repeat(widths, counts)
    hashes = np.zeros(total, dtype=np.uint64)
    rolling = np.zeros(len(points) - size, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrapping at 2**64 is what a hash wants
        for offset in range(size):
            rolling = rolling * np.uint64(FNV_PRIME) + points[offset:offset + len(rolling)]
            done = np.flatnonzero(width == offset + 1)  # windows of this width are complete now
            hashes[done] = rolling[window[done]]
        hashes ^= hashes >> np.uint64(29)  # mix high bits into low bits before multiplying
        hashes *= np.uint64(0xBF58476D1CE4E5B9)
    hashes[runs[lengths == 0]] = 0
    return hashes, runs


def _signatures(texts: list[str], size: int, a, b, shown, chunk: int = 4096):
    """MinHash signatures, a row per text: for each hash function ``a * x + b`` (``len(a)`` of them), its least
    value over the text's shingles. ``chunk`` texts at a time, one function at a time, in place: numpy's
    fastest order here (a few MB at a time)."""
    import numpy as np

    signatures = np.empty((len(texts), len(a)), dtype=np.uint64)
    for start in range(0, len(texts), chunk):
        hashes, runs = _chunk_shingles(texts[start:start + chunk], size)
        values = np.empty_like(hashes)
        with np.errstate(over="ignore"):
            for function in range(len(a)):
                np.multiply(a[function], hashes, out=values)
                values += b[function]
                signatures[start:start + len(runs), function] = np.minimum.reduceat(values, runs)
        shown.update(len(runs))
    return signatures


def _band_keys(signatures, bands):
    """Each band (a row of ``bands``: the signature entries it takes) as one 64-bit key, distinct across bands:
    rows that share a key share the band (a chance collision of two keys only adds a candidate, checked anyway)."""
    import numpy as np

    keys = np.empty((len(signatures), len(bands)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band, entries in enumerate(bands):
            key = np.full(len(signatures), band + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            for entry in entries:
                key = (key ^ signatures[:, entry]) * np.uint64(FNV_PRIME)
                key ^= key >> np.uint64(32)
            keys[:, band] = key
    return keys


def _greedy(signatures, keys, threshold: float, shown) -> dict[int, tuple[int, float]]:
    """Rows in order: one whose signature agrees with a kept row of its buckets on ``threshold`` of its entries
    or more is dropped (as a copy of the most similar); otherwise it is kept and joins its buckets. A row
    that shares no band key with any other row is kept without a visit: only the others are looped over."""
    import numpy as np

    shared = np.zeros(len(keys), dtype=bool)
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        same = keys[order[1:], band] == keys[order[:-1], band]
        shared[order[1:][same]] = True
        shared[order[:-1][same]] = True
    visit = np.flatnonzero(shared)
    shown.update(len(keys) - len(visit))
    buckets: dict[int, list[int]] = {}
    dropped: dict[int, tuple[int, float]] = {}
    needed = math.ceil(threshold * signatures.shape[1] - 1e-9)  # entries that must agree
    for n, (i, row_keys) in enumerate(zip(visit.tolist(), keys[visit].tolist(), strict=True)):
        if n % 4096 == 4095:
            shown.update(4096)
        found = [bucket for bucket in map(buckets.get, row_keys) if bucket]
        if found:
            candidates = sorted(set().union(*found)) if len(found) > 1 else found[0]  # a bucket is in order
            agree = np.count_nonzero(signatures[candidates] == signatures[i], axis=1)
            best = int(agree.argmax())  # the first of equals: the earliest kept row
            if agree[best] >= needed:
                dropped[i] = (candidates[best], int(agree[best]) / signatures.shape[1])
                continue
        for k in row_keys:
            buckets.setdefault(k, []).append(i)
    shown.update(len(visit) % 4096)
    return dropped


def dedup(rows, near: bool = False, threshold: float = 0.9, key="conversation", shingle_size: int = 5,
          num_perm: int = 128, seed: int = 0, progress: bool | None = None):
    """Drop duplicate rows; returns ``(dataset, report)``. The first copy of each item is kept.

    ``rows``: a Dataset of chat rows, or anything ``ftlab.data.load`` accepts. ``key``:
    ``"conversation"`` (prompt and answer, the default), ``"prompt"`` (one row per prompt), or a
    function of a row. Texts are compared after case folding and collapsing whitespace. ``near=True``
    also drops rows whose estimated Jaccard similarity of character shingles to a kept row is at least
    ``threshold`` (see the module's docstring for the method and its limits).
    """
    dataset = chat_dataset(rows)
    texts = key_texts(dataset, key)
    first: dict[str, int] = {}  # normalised text -> index of its first row
    copies: Counter = Counter()
    duplicate_of: dict[int, int] = {}
    kept: list[int] = []
    for i, text in enumerate(texts):
        copies[text] += 1
        if text in first:
            duplicate_of[i + 1] = first[text] + 1
        else:
            first[text] = i
            kept.append(i)
    exact_removed = len(texts) - len(kept)
    near_examples: list[tuple[str, str, float]] = []
    near_removed = 0
    if near:
        dropped = _near([texts[i] for i in kept], threshold, shingle_size, num_perm, seed, progress)
        for position, (other, similarity) in dropped.items():
            duplicate_of[kept[position] + 1] = kept[other] + 1
            if len(near_examples) < 5:
                near_examples.append((texts[kept[other]], texts[kept[position]], similarity))
        near_removed = len(dropped)
        kept = [index for position, index in enumerate(kept) if position not in dropped]
    most = [(text, count) for text, count in copies.most_common(10) if count > 1]
    report = DedupReport(rows_before=len(texts), rows_after=len(kept), exact_removed=exact_removed,
                         near_removed=near_removed, key=key if isinstance(key, str) else "a custom key",
                         most_repeated=most, near_examples=near_examples,
                         duplicate_of=dict(sorted(duplicate_of.items())))
    return dataset.select(kept), report


SIGN_OFFS = {"en": " Hope this helps!", "zh": "希望对你有帮助！"}


def near_copies(rows, share: float = 0.1, seed: int = 0, lang: str = "en") -> tuple[list[dict], dict[int, int]]:
    """``rows`` with near-duplicate copies added, as scraped data has them; returns ``(rows, copy_of)``.

    A ``share`` of the rows gets a copy placed later in the list, its answer changed in one small way: a
    sign-off appended, two neighbouring letters swapped (a typo), or the final full stop made an
    exclamation mark. ``copy_of`` maps each copy's row number to its original's (1-based, like
    ``DedupReport.duplicate_of``), so what ``dedup(near=True)`` finds can be checked against it.
    """
    if lang not in SIGN_OFFS:
        raise ValueError(f"lang must be one of {sorted(SIGN_OFFS)}, not {lang!r}")
    rng = random.Random(f"ftlab-near-copies-{seed}")
    out = [copy.deepcopy(dict(row)) for row in rows]
    chosen = sorted(rng.sample(range(len(out)), round(share * len(out))))
    copies = []
    for index in chosen:
        row = copy.deepcopy(out[index])
        answer = row["messages"][-1]
        answer["content"] = _small_edit(answer["content"], rng.choice(("sign-off", "typo", "exclamation")), lang, rng)
        copies.append((index, row))
    originals = [(out[index], row) for index, row in copies]
    for index, row in reversed(copies):  # insert from the end, so earlier positions stay valid
        out.insert(rng.randint(index + 1, len(out)), row)
    number = {id(row): n for n, row in enumerate(out, start=1)}
    return out, dict(sorted((number[id(row)], number[id(original)]) for original, row in originals))


def _small_edit(text: str, kind: str, lang: str, rng) -> str:
    if kind == "sign-off":
        return text + SIGN_OFFS[lang]
    if kind == "exclamation" and text.endswith("." if lang == "en" else "。"):
        return text[:-1] + ("!" if lang == "en" else "！")
    letters = [i for i in range(len(text) // 4, len(text) - 1) if text[i].isalpha() and text[i + 1].isalpha()
               and text[i] != text[i + 1]]
    if not letters:
        return text + SIGN_OFFS[lang]
    i = rng.choice(letters)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]
