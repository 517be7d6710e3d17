"""Checks of exercise 07 (merge one layer by hand).

``check_merge_layer`` calls the learner's ``merge_layer(W, A, B, alpha, r)`` on tensors it draws at check time, so
a merged weight read back from ``ftlab.merge_adapter``'s output cannot stand in for the formula;
``check_merged_weight`` then checks the learner's merged layer of a real adapter.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ftlab.course.checks.base import CheckFailed, fail, mistake, passed, still_none
from ftlab.export import adapter as export
from ftlab.export.merge import lora_pairs, nf4_round_trip
from ftlab.files.safetensors import data_start, read_header, read_tensor


def _weight_in(folder, name: str):
    """One weight of a saved model, read from its safetensors files without loading the model."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        header = read_header(path)
        if name in header:
            with open(path, "rb") as f:
                return read_tensor(f, header[name], data_start(path)).float()
    raise KeyError(f"{folder} has no weight named {name!r}")


def check_merge_layer(merge_layer) -> bool:
    """Exercise 07: ``merge_layer(W, A, B, alpha, r)`` returns the weight with the LoRA update folded in, tried on
    layers of shapes and ranks drawn now; graded as a whole."""
    import torch

    still_none("merge_layer", merge_layer)
    if not callable(merge_layer):
        mistake(f"merge_layer is a {type(merge_layer).__name__}: it should be a function of (W, A, B, alpha, r).",
                "def merge_layer(W, A, B, alpha, r): ... return the merged weight")
    generator = torch.Generator().manual_seed(secrets.randbelow(2**31))
    for _ in range(3):
        out, into, r = (int(torch.randint(2, 48, (1,), generator=generator)) for _ in range(3))
        alpha = float(torch.randint(1, 64, (1,), generator=generator))
        w, a, b = (torch.randn(shape, generator=generator) for shape in ((out, into), (r, into), (out, r)))
        try:
            got = merge_layer(w.clone(), a.clone(), b.clone(), alpha, r)
        except Exception as error:  # the learner's code: say what broke, in their terms
            mistake(f"merge_layer(W, A, B, alpha, r) raised {type(error).__name__}: {error}",
                    "the shapes: W is (out_features x in_features), A is (r x in_features), B is (out_features x r)")
        if not isinstance(got, torch.Tensor) or got.shape != w.shape or not torch.allclose(
                got.float(), w + alpha / r * (b @ a), atol=1e-5, rtol=1e-4):
            mistake("merge_layer does not give the merged weight on the layers drawn just now.",
                    "what merging computes: the LoRA path's product B A, scaled by alpha / r, added to W, in W's shape")
    return passed("merge_layer folds a LoRA update into any layer's weight")


def check_merged_weight(merged, adapter, layer: str, name: str = "merged") -> bool:
    """``merged``: the weight of ``layer`` with the adapter saved in ``adapter`` folded in (exercise 07).

    The right answer is W + (alpha/r) B A, where W is the weight the adapter trained against: the
    base's own weight, or for a 4-bit base its NF4 rounding Q(W).
    """
    import torch

    record = export.read_record(adapter)
    pairs, scale = lora_pairs(Path(adapter))
    a, b = pairs[f"{layer}.weight"]
    original = _weight_in(export.base_folder(record["base_model"]), f"{layer}.weight")
    quantization = record.get("base_quantization")
    trained_on = nf4_round_trip(original, quantization).float() if quantization else original
    if merged is None:
        fail(name, None, f"the merged weight of {layer}, a tensor")
    if not isinstance(merged, torch.Tensor):
        raise CheckFailed(f"{name} is a {type(merged).__name__}, but it should be a torch tensor: the weight matrix "
                          "itself.\nHint: the merged weight is a matrix the size of the layer's weight")
    got = merged.detach().float().cpu()
    if got.shape != trained_on.shape:
        turned = got.shape == trained_on.T.shape
        raise CheckFailed(f"{name} has shape {tuple(got.shape)}, not the shape of the layer's weight "
                          f"(out_features x in_features).\nHint: " + (
                              "it is transposed. Revisit the shapes: A is (r x in_features), B is (out_features x r)" if turned
                              else "revisit the shapes: A is (r x in_features), B is (out_features x r)"))

    def near(weight):
        return torch.allclose(got, weight, atol=1e-5, rtol=1e-4)

    if got.shape[0] == got.shape[1] and near((trained_on + scale * (b @ a)).T):
        raise CheckFailed(f"{name} is transposed: the layer's weight is (out_features x in_features).\nHint: revisit "
                          "the shapes: A is (r x in_features), B is (out_features x r)")
    if near(trained_on) or near(original):
        raise CheckFailed(f"{name} equals the base weight: the adapter's update is not in it.\nHint: revisit what "
                          "merging computes: the LoRA path's product, scaled, is added to W")
    if quantization and near(original + scale * (b @ a)):
        raise CheckFailed(f"{name} starts from the original weight W, but this adapter was trained on a 4-bit base: "
                          "every weight it saw was W rounded to NF4.\nHint: revisit 'why a 4-bit base rounds': start "
                          "from the weight the 4-bit layer computes with (dequantize it)")
    r = a.shape[0]
    for wrong in {1.0, 1 / scale, scale * r, scale / r} - {scale}:
        if near(trained_on + wrong * (b @ a)) or near(original + wrong * (b @ a)):
            raise CheckFailed(f"{name} has the update B A, but scaled wrongly.\nHint: revisit the scale: LoRA "
                              "multiplies its path by alpha / r (both are in adapter_config.json)")
    if not near(trained_on + scale * (b @ a)):
        gap = (got - trained_on - scale * (b @ a)).abs().max().item()
        raise CheckFailed(f"{name} is off by up to {gap:.1e} somewhere.\nHint: revisit what merging computes, "
                          "W' = W + (alpha/r) B A, with A and B of this very layer")
    where = "its 4-bit rounding Q(W)" if quantization else "W"
    return passed(f"{name} = {where} + (alpha/r) B A for {layer}")
