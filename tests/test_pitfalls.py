"""The pitfalls the chapters make strike once (ftlab.course.pitfalls): each strikes with the guard off, not with it on."""

import pytest
import torch

from ftlab import Template
from ftlab.course import pitfalls
from ftlab.models.loading import tiny_model


def test_pad_equal_to_eos_leaves_no_row_that_teaches_stopping(tiny, greet_data):
    _, tokenizer = tiny
    train, _ = greet_data
    template = Template.chat(tokenizer)
    assert pitfalls.stop_taught(template, train) == 1.0  # ftlab's template: every answer's end carries loss
    broken = pitfalls.pad_is_eos(template)
    assert pitfalls.stop_taught(broken, train) == 0.0
    ids, mask = template.encode(train[0]["messages"])
    broken_ids, broken_mask = broken.encode(train[0]["messages"])
    assert broken_ids == ids  # the same text: only the end tokens lost their loss
    assert [m for t, m in zip(ids, mask, strict=True) if t != tokenizer.eos_token_id] == \
        [m for t, m in zip(ids, broken_mask, strict=True) if t != tokenizer.eos_token_id]
    assert broken.stop_token_ids == template.stop_token_ids


def test_fp16_trainables_raise_the_unscale_error_and_fp32_ones_step(tiny_path, greet_data):
    model, tokenizer = tiny_model(path=tiny_path, precision="fp16")
    rows = greet_data[0][:2]
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        pitfalls.mixed_precision_step(model, tokenizer, rows, fp32_trainables=False)
    loss = pitfalls.mixed_precision_step(model, tokenizer, rows, fp32_trainables=True)
    assert loss > 0 and loss == loss  # a finite loss: the step ran
    assert all(p.dtype == torch.float16 for p in model.parameters())  # the caller's model is left as it was
