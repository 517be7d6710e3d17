"""The hand-written LoRA layer of chapter 00 (ftlab.course.by_hand.lora) computes what PEFT's LoRA computes."""

import pytest
import torch

from ftlab.course.by_hand.lora import LoRALinear, copy_into_peft, peft_linear, trainable


def test_the_hand_written_lora_layer_equals_pefts_output():
    torch.manual_seed(0)
    base = torch.nn.Linear(64, 48)
    mine, theirs = LoRALinear(base, r=4, alpha=8), peft_linear(base, r=4, alpha=8)
    x = torch.randn(5, 64)
    # B = 0 at the start: both layers answer exactly as the base layer did
    assert torch.equal(mine(x), base(x)) and torch.equal(theirs(x), base(x))
    with torch.no_grad():
        mine.B.normal_()  # as after some training: the update is no longer zero
    assert not torch.allclose(mine(x), base(x))
    assert not torch.allclose(theirs(x), mine(x))  # PEFT's own A and B differ until copied
    copy_into_peft(mine, theirs)
    torch.testing.assert_close(theirs(x), mine(x), rtol=1e-5, atol=1e-5)
    assert theirs.scaling["default"] == mine.scale == 2.0  # alpha / r


@pytest.mark.parametrize("r, alpha", [(1, 1), (8, 32)])
def test_only_r_times_in_plus_out_numbers_train(r, alpha):
    base = torch.nn.Linear(256, 64)
    mine = LoRALinear(base, r=r, alpha=alpha)
    assert trainable(mine) == r * (256 + 64) == trainable(peft_linear(torch.nn.Linear(256, 64), r, alpha))
    assert not base.weight.requires_grad


def test_a_model_wrapped_with_fresh_lora_answers_exactly_as_its_base(tiny):
    """Chapter 00: B = 0 at the start, so the whole wrapped model computes what the base model computed."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    ids = tokenizer("Greet Ann politely.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = model(ids).logits.clone()
        wrapped = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                         "o_proj"], task_type="CAUSAL_LM"))
        wrapped.eval()
        assert torch.equal(wrapped(ids).logits, before)
