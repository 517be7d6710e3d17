"""A second tree over a model's weights (ftlab.round.shared_base): the numbers shared, the flags and the
4-bit quantisation state its own, so PEFT or bitsandbytes working on one tree leave the other as it was."""

import pytest
import torch

import ftlab
from ftlab.round.shared_base import over_same_weights


def test_the_new_tree_shares_the_numbers_but_not_the_flags(tiny):
    from peft import LoraConfig, get_peft_model

    model, _ = tiny
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    tree = over_same_weights(model)
    get_peft_model(tree, LoraConfig(r=2, target_modules=["q_proj"]))  # freezes every base weight of tree
    twins = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
             for n, p in tree.named_parameters() if "lora_" not in n}
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags and all(flags.values())
    assert not any(p.requires_grad for p in twins.values())
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == {n: twins[n].data_ptr() for n in flags}
    assert not hasattr(model, "peft_config")


def test_tied_weights_stay_tied_in_the_new_tree():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, tie_word_embeddings=True)
    tree = over_same_weights(LlamaForCausalLM(config))
    assert tree.lm_head.weight is tree.model.embed_tokens.weight


def test_a_repack_of_the_new_trees_4bit_weights_leaves_the_callers_model_as_it_was(tiny_path):
    """bitsandbytes repacks a 4-bit weight for CPU inference by changing its quantisation state in place."""
    bnb = pytest.importorskip("bitsandbytes")
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    model, tokenizer = ftlab.tiny_model(quantization="4bit", path=tiny_path)
    prompt = tokenizer("Hello there", return_tensors="pt")
    with torch.no_grad():
        before = model(**prompt).logits
    tree = over_same_weights(model)
    layers = [m for m in tree.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.weight.module is m and m.quant_state is m.weight.quant_state for m in layers)
    for layer in layers:
        layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(layer.weight.data,
                                                                                      layer.weight.quant_state)
    with torch.no_grad():
        assert torch.equal(model(**prompt).logits, before)


def test_an_8bit_layer_that_has_run_shares_its_int8_weights_with_the_new_tree(tiny_path):
    """After a forward pass bitsandbytes keeps an 8-bit layer's weights in ``layer.state``, not only the weight."""
    bnb = pytest.importorskip("bitsandbytes")

    model, tokenizer = ftlab.tiny_model(quantization="8bit", path=tiny_path)
    with torch.no_grad():
        model(**tokenizer("Hello there", return_tensors="pt"))  # e.g. the base answering before a round
    tree = over_same_weights(model)
    pairs = [(old, new) for old, new in zip(model.modules(), tree.modules(), strict=True)
             if isinstance(old, bnb.nn.Linear8bitLt)]
    assert pairs and all(old.state.CB is not None for old, _ in pairs)
    assert all(new.state.CB.data_ptr() == old.state.CB.data_ptr() == old.weight.data_ptr() for old, new in pairs)
    assert all(new.state is not old.state and new.weight is not old.weight for old, new in pairs)
