"""The checked questions at the end of a chapter: the learner writes a small function, the check runs it.

Every chapter ends on questions a learner should now be able to answer (fastbook's questionnaire); a few
of them are answered with a function, which ``check_function`` calls on inputs drawn at check time and
compares with the formula the chapter taught. The expected values are never printed: a wrong function
is told on which inputs it differs and which idea to revisit. An unanswered question (``None``) is not a
failure, only a note: the chapters run as shipped, in CI too.

``REFERENCES`` holds the formulas, one per question name, with the inputs to draw and the idea to revisit.
"""

from __future__ import annotations

import math
import random

from ftlab.course.checks.base import close_to, mistake, passed


def lora_params(d_in: int, d_out: int, r: int) -> int:
    """Numbers LoRA of rank r trains on one d_out x d_in layer: A (r x d_in) and B (d_out x r)."""
    return r * (d_in + d_out)


def uniform_loss(vocab: int) -> float:
    """The loss per token of a model that spreads its bet evenly over a vocabulary of ``vocab`` tokens: ln V."""
    return math.log(vocab)


def jaccard(a: str, b: str, size: int = 5) -> float:
    """Jaccard similarity of the sets of character ``size``-grams of two texts (what MinHash estimates)."""
    grams = [{text[i:i + size] for i in range(max(1, len(text) - size + 1))} for text in (a, b)]
    return len(grams[0] & grams[1]) / len(grams[0] | grams[1])


def nf4_bits(block: int) -> float:
    """Bits per weight of NF4 without double quantization: 4-bit codes plus one fp32 absmax per ``block`` weights."""
    return 4 + 32 / block


def lora_training_bytes(params: int) -> int:
    """Bytes that LoRA's fp32 weights, their gradients and AdamW's two moments take during training."""
    return params * (4 + 4 + 8)


def _words(rng: random.Random) -> str:
    return " ".join(rng.choice(["add", "the", "sum", "of", "two", "numbers", "seven", "and", "nine", "is"])
                    for _ in range(rng.randint(3, 9)))


def _near_pair(rng: random.Random) -> tuple[str, str]:
    text = _words(rng)
    return text, text + rng.choice(["!", " Thanks.", "", " please"])


REFERENCES = {
    "lora_params": (lora_params, lambda rng: (rng.choice([64, 576, 2048, 4096]), rng.choice([64, 192, 256, 5632]),
                                              rng.choice([1, 4, 8, 16, 64])),
                    "chapter 00, section 1: A is r x in, B is out x r"),
    "uniform_loss": (uniform_loss, lambda rng: (rng.randint(100, 200_000),),
                     "chapter 00, section 4: a uniform bet over V tokens pays -ln(1/V) per token"),
    "jaccard": (jaccard, _near_pair, "chapter 01, section 3: |A ∩ B| / |A ∪ B| over the sets of character 5-grams"),
    "nf4_bits": (nf4_bits, lambda rng: (rng.choice([16, 32, 64, 128, 256]),),
                 "chapter 02, section 2: 4 bits a code, one fp32 absmax per block"),
    "lora_training_bytes": (lora_training_bytes, lambda rng: (rng.randint(1_000, 50_000_000),),
                            "chapter 02, section 1: LoRA's weights, gradients and AdamW's two moments, all fp32"),
}


def check_function(name: str, answer, cases: int = 5, seed: int | None = None) -> bool | None:
    """Run the learner's ``answer`` (a function) against the formula ``name`` on ``cases`` inputs drawn now.

    Returns True when it agrees on all of them, None when the question is not answered yet (``answer`` is None);
    raises ``CheckFailed`` naming the inputs on which it differs and the idea to revisit, never the expected value.
    """
    if name not in REFERENCES:
        raise ValueError(f"no checked question {name!r}; the questions are {sorted(REFERENCES)}")
    reference, draw, revisit = REFERENCES[name]
    if answer is None:
        print(f"{name}: not answered yet (optional). Write the function, then run this cell again.")
        return None
    if not callable(answer):
        mistake(f"{name} is a {type(answer).__name__}: write a function, so that it can be tried on new inputs.",
                f"def {name}(...): return ...")
    rng = random.Random(seed)
    for _ in range(cases):
        inputs = draw(rng)
        try:
            got = answer(*inputs)
        except Exception as error:  # the learner's code: say where it broke, not what it should return
            mistake(f"{name}{inputs!r} raised {type(error).__name__}: {error}", revisit)
        if not isinstance(got, int | float) or isinstance(got, bool) or not close_to(got, reference(*inputs), 1e-6):
            mistake(f"{name}{inputs!r} gives {got!r}, which is not what the formula gives.", revisit)
    return passed(f"{name} agrees with the formula on {cases} inputs drawn just now")
