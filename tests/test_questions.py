"""The checked questions at the chapters' ends (ftlab.course.questions): right functions pass, others are refused
without the expected value, and an unanswered question is a note, not a failure."""

import math
import random

import pytest

from ftlab.course.checks.base import CheckFailed
from ftlab.course.questions import REFERENCES, check_function


def test_the_formula_itself_passes_every_question():
    for name, (reference, _, _) in REFERENCES.items():
        assert check_function(name, reference, seed=1) is True


def test_an_unanswered_question_is_a_note(capsys):
    assert check_function("lora_params", None) is None
    assert "not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("name, wrong", [
    ("lora_params", lambda d_in, d_out, r: r * d_in * d_out),  # the full matrix, not the low-rank pair
    ("lora_params", lambda d_in, d_out, r: 2 * r * d_in),      # a square layer assumed
    ("uniform_loss", lambda vocab: math.log2(vocab)),         # bits, not nats
    ("jaccard", lambda a, b: len(set(a) & set(b)) / len(set(a) | set(b))),  # characters, not 5-grams
    ("nf4_bits", lambda block: 4.0),                            # the absmax forgotten
    ("lora_training_bytes", lambda params: params * 4),         # the weights alone
    ("lora_params", 4096),                                      # a number, not a function
])
def test_a_wrong_answer_is_refused_without_the_expected_value(name, wrong):
    reference, draw, _ = REFERENCES[name]
    with pytest.raises(CheckFailed) as refused:
        check_function(name, wrong, seed=2)
    message = str(refused.value)
    assert "Revisit" in message
    first_inputs = draw(random.Random(2))  # the check's first draw with the same seed: the answer it refused
    if callable(wrong):
        assert repr(reference(*first_inputs)) not in message
