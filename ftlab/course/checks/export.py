"""Checks of exercise 07 (merge one layer by hand)."""

from __future__ import annotations

from pathlib import Path

from ftlab.course.checks.base import CheckFailed, fail, passed
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
