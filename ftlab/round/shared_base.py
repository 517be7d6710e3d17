"""A second module tree over a model's weights: how ``train_round``, ``lr_find`` and ``side_by_side`` put
adapters on the model they were given without changing it and without a second copy of the base.

PEFT wraps the tree it is given in place (LoRA layers injected, every base weight's ``requires_grad``
turned off), so ftlab hands it a new tree instead. The numbers stay in one place: each base weight of
the new tree is a new ``Parameter`` object over the same tensor (``data_ptr`` equal), since
``requires_grad`` is a property of the ``Parameter`` object, not of the numbers.
"""

from __future__ import annotations

import copy


def over_same_weights(model):
    """A new module tree over the same weight tensors: PEFT changes the tree it wraps, and the caller's
    model must stay the base it was. The numbers are shared, never copied (a T4 has no room for two
    bases), but each base weight gets a new ``Parameter`` object: ``requires_grad`` belongs to that object,
    so PEFT freezing the new tree leaves the caller's flags alone. The small LoRA weights of a model that
    already has adapters are copied, so training goes on from them while the earlier round's adapter
    stays as it was."""
    memo = {}
    for name, param in model.named_parameters():
        if "lora_" not in name:
            memo[id(param)] = _same_numbers(param, memo)
    memo.update({id(b): b for name, b in model.named_buffers() if "lora_" not in name})
    for module in model.modules():  # an 8-bit layer that has run keeps its int8 weights in its matmul state
        state = getattr(module, "state", None)
        if type(state).__name__ == "MatmulLtState":
            memo.update({id(t): t for t in vars(state).values() if hasattr(t, "data_ptr")})
    tree = copy.deepcopy(model, memo=memo)
    for module in tree.modules():  # bitsandbytes' 4-bit weights point back at their layer: the new one
        for param in module._parameters.values():
            if getattr(param, "module", None) is not None:
                param.module = module
        forward = module.__dict__.get("forward")
        if getattr(getattr(getattr(forward, "__func__", forward), "__code__", None), "co_name", "") == "_fused_forward":
            # TRL's fused LM head closes over the model it was put on: copied, it would run the original model.
            # The copy gets its class's forward back; SFTTrainer puts a head of its own on it.
            del module.forward
    return tree


def _same_numbers(param, memo):
    """A new Parameter (of the same class, bitsandbytes' included) over ``param``'s tensor, with its own flag.

    A 4-bit weight's quantisation state is copied shallowly (its tensors shared), so that bitsandbytes
    swapping in a repacked state on one tree leaves the other's consistent with its own numbers.
    """
    import torch

    twin = torch.Tensor._make_subclass(type(param), param.data, param.requires_grad)
    twin.__dict__.update(param.__dict__)
    if getattr(param, "quant_state", None) is not None:
        twin.quant_state = memo.setdefault(id(param.quant_state), copy.copy(param.quant_state))
    return twin


def share_recast_weights(base, tree) -> None:
    """Point ``base``'s parameters at the tensors ``tree``'s twins now hold where those were replaced (a cast
    to fp32): one copy of the numbers, as before the cast, and ``base`` computes with what ``tree`` trains on."""
    twins = dict(tree.named_parameters())
    for name, param in base.named_parameters():
        twin = twins.get(name)
        if twin is not None and twin.data_ptr() != param.data_ptr():
            param.data = twin.data
