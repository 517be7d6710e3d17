"""How long the rows are in tokens, once templated: what gets truncated and what padding wastes.

The length that matters is the length the trainer sees: the template applied, then tokenised
(``Template.token_lengths``, the same ids as ``Template.encode`` gives the trainer). Rows longer than ``max_length`` are cut,
and a cut answer teaches the model to stop mid-sentence (or loses the answer entirely); rows batched
together are padded to the longest one, and those pad tokens cost compute for nothing.
``length_report`` measures both, and ``LengthReport.plot`` draws the histogram with the cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftlab.console.lines import Progress
from ftlab.data.loading import chat_dataset
from ftlab.templates.template import Template

CHUNK = 2000  # rows templated and tokenised per call: large enough to be fast, small enough for progress


def _conversations(rows):
    """Yield chunks of ``messages`` lists from a Dataset, a list of chat rows or a list of message lists."""
    if hasattr(rows, "iter") and hasattr(rows, "column_names"):  # a datasets.Dataset: read in batches
        for batch in rows.iter(batch_size=CHUNK):
            yield batch["messages"]
        return
    rows = list(rows)
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        yield [r["messages"] if isinstance(r, dict) else r for r in chunk]


def token_lengths(rows, tokenizer, progress: bool | None = None, template=None) -> list[int]:
    """The templated token length of every row (chat rows, a Dataset of them, or message lists).

    ``template`` (default: ``Template.chat(tokenizer)``) counts them. Shows its progress when it takes more
    than a few seconds (``ftlab.console.lines.worth_showing``) unless ``progress=False``.
    """
    template = template or Template.chat(tokenizer)
    total = len(rows)
    lengths: list[int] = []
    with Progress(total, "Templating and tokenising", "rows", progress is not False) as bar:
        for chunk in _conversations(rows):
            lengths += template.token_lengths(chunk)
            bar.update(len(chunk))
    return lengths


def _padding_waste(lengths: list[int], batch_size: int) -> float:
    padded = real = 0
    for start in range(0, len(lengths), batch_size):
        batch = lengths[start:start + batch_size]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return 1 - real / padded if padded else 0.0


@dataclass
class LengthReport:
    """Token lengths of a data set against ``max_length``. ``print`` it, or ``.plot()`` it."""

    lengths: list[int]
    max_length: int
    batch_size: int
    truncated_share: float  # share of rows longer than max_length: they get cut
    padding_waste: float  # share of pad tokens when batched in the data's order (lengths cut at max_length)
    padding_waste_sorted: float  # the same after sorting by length (what group_by_length approximates)
    truncated_rows: list[int] = field(default_factory=list)  # 1-based numbers of the rows that get cut

    def _percentile(self, q: float) -> int:
        ordered = sorted(self.lengths)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0

    def __repr__(self) -> str:
        if not self.lengths:
            return "LengthReport(no rows)"
        n = len(self.lengths)
        cut = len(self.truncated_rows)
        return (f"Token lengths of {n:,} rows (chat template applied): min {min(self.lengths)}, "
                f"median {self._percentile(0.5)}, 95th percentile {self._percentile(0.95)}, "
                f"max {max(self.lengths)}\n"
                f"  longer than max_length={self.max_length}: {cut:,} rows ({self.truncated_share:.1%}), "
                "they would be cut\n"
                f"  padding waste at batch_size={self.batch_size}: {self.padding_waste:.1%} of tokens in data "
                f"order, {self.padding_waste_sorted:.1%} if batched by length")

    def show(self) -> None:
        print(repr(self))

    def plot(self, ax=None, bins: int = 50):
        """A histogram of the lengths with the ``max_length`` cut-off; returns the matplotlib Axes."""
        import matplotlib.pyplot as plt  # imported here: most uses of ftlab.data never draw

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(self.lengths, bins=bins, color="#4c72b0")
        ax.axvline(self.max_length, color="#c44e52", linestyle="--",
                   label=f"max_length = {self.max_length} ({self.truncated_share:.1%} cut)")
        ax.set_xlabel("tokens per row (chat template applied)")
        ax.set_ylabel("rows")
        ax.legend()
        return ax


def length_report(dataset, tokenizer, max_length: int = 512, batch_size: int = 8,
                  progress: bool | None = None) -> LengthReport:
    """Measure templated token lengths: share cut at ``max_length`` and padding waste at ``batch_size``.

    ``dataset`` is a ``datasets.Dataset`` of chat rows, a list of them, or anything ``load`` accepts. Each length is
    the number of token ids ``Template.chat(tokenizer).encode(row["messages"])`` gives the trainer, computed in batches.
    """
    if not (isinstance(dataset, list) and all(isinstance(r, dict) and "messages" in r for r in dataset)):
        dataset = chat_dataset(dataset)  # other shapes and formats: checked and converted first
    lengths = token_lengths(dataset, tokenizer, progress=progress)
    cut = [min(n, max_length) for n in lengths]  # the trainer truncates before it pads
    truncated = [i for i, n in enumerate(lengths, start=1) if n > max_length]
    return LengthReport(lengths=lengths, max_length=max_length, batch_size=batch_size,
                        truncated_share=len(truncated) / len(lengths) if lengths else 0.0,
                        padding_waste=_padding_waste(cut, batch_size),
                        padding_waste_sorted=_padding_waste(sorted(cut), batch_size),
                        truncated_rows=truncated)
