"""Checks every model family's tests make the same way: the staged forward equals the plain one,
the features have the shapes ``feature_info`` announces and come out of the sub-modules it names,
and the classifier follows ``num_classes`` / ``reset_classifier``; and the models the tests of
every family share (the smallest of each family, with trained-looking BatchNorms)."""

from __future__ import annotations

import torch
import torch.nn as nn

import ssld_zoo

# The smallest architecture of each family (the giant resnext_wsl family by its smallest member).
ONE_PER_FAMILY = {
    "ghostnet": "ghostnet_x0_5",
    "hrnet": "hrnet_w18_c",
    "mobilenet_v1": "mobilenetv1_x0_25",
    "mobilenet_v2": "mobilenetv2_x0_25",
    "mobilenet_v3": "mobilenetv3_small_x0_35",
    "nextvit": "nextvit_small_224",
    "pp_hgnet": "pphgnet_tiny",
    "pp_hgnet_v2": "pphgnetv2_b0",
    "pp_lcnet": "pplcnet_x0_25",
    "pp_lcnet_v2": "pplcnetv2_small",
    "res2net_vd": "res2net50_vd_26w_4s",
    "resnet_vd": "resnet18_vd",
    "resnext_wsl": "resnext101_32x8d_wsl",
}
SMALLEST_MODELS = list(ONE_PER_FAMILY.values())


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, as trained weights have
    (fresh ones are the identity, which would make folding or a wrong BN trivially exact)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
            if m.affine:
                m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model


def sample_batch(batch: int = 2, size: int = 64) -> torch.Tensor:
    """A seeded N(0, 1) batch; 64 is a multiple of 32 (HRNet) with enough tokens for
    Next-ViT's pooled attention."""
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def random_bn_model(name: str, **kwargs) -> nn.Module:
    """``ssld_zoo.load(name, pretrained=False, **kwargs)``, seeded, BatchNorms randomised, eval."""
    torch.manual_seed(0)
    return randomise_bn(ssld_zoo.load(name, pretrained=False, **kwargs)).eval()


def staged_forward(model: torch.nn.Module, x: torch.Tensor):
    """``forward_stages`` -> ``final_features`` -> ``forward_head``, checked to equal
    ``model(x)`` exactly; returns (stage features, logits)."""
    with torch.no_grad():
        feats = model.forward_stages(x)
        logits = model.forward_head(model.final_features(feats))
        assert torch.equal(model(x), logits)
    return feats, logits


def assert_feature_shapes(
    model: torch.nn.Module, feats, x: torch.Tensor, *, ceil: bool = False
) -> None:
    """One feature per ``feature_info`` entry, of its channels at input size / its reduction
    (rounded up with ``ceil``: the layers pad odd sizes and keep the edges)."""
    n, _, h, w = x.shape
    assert len(feats) == len(model.feature_info)
    for f, info in zip(feats, model.feature_info):
        r = info.reduction
        size = (-(-h // r), -(-w // r)) if ceil else (h // r, w // r)
        assert f.shape == (n, info.channels, *size), info.module


def assert_feature_modules_produce_features(model: torch.nn.Module) -> None:
    """Each ``feature_info[i].module`` is a real sub-module, and its output (a forward hook's
    view) is exactly feature i of ``forward_stages``."""
    seen = {}
    handles = [
        model.get_submodule(info.module).register_forward_hook(
            lambda m, i, o, key=info.module: seen.__setitem__(key, o)
        )
        for info in model.feature_info
    ]
    try:
        with torch.no_grad():
            feats = model.forward_stages(torch.randn(1, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    for f, info in zip(feats, model.feature_info):
        assert torch.equal(f, seen[info.module]), info.module


def assert_outputs(model: torch.nn.Module, width: int, x: torch.Tensor) -> None:
    """The model maps x to ``width`` values per image (classes, or pooled features when the
    classifier is removed)."""
    with torch.no_grad():
        assert model(x).shape == (x.shape[0], width)


def assert_classifier(model: torch.nn.Module, num_classes: int, x: torch.Tensor) -> None:
    """The classifier, ``num_classes`` and the output all have ``num_classes`` classes."""
    assert model.get_classifier().out_features == num_classes
    assert model.num_classes == num_classes
    assert_outputs(model, num_classes, x)


def assert_classifier_then_pooled(
    model: torch.nn.Module, num_classes: int, width: int, x: torch.Tensor
) -> None:
    """``num_classes`` classes as built; after ``reset_classifier(0)``, the ``width`` pooled
    features."""
    assert_classifier(model, num_classes, x)
    model.reset_classifier(0)
    assert_outputs(model, width, x)


def features_only_equals_full(name: str, out_indices: tuple[int, ...]) -> torch.nn.Module:
    """``name`` built with ``features_only=True, out_indices=...`` and given the full model's
    weights (less the dropped head) returns exactly the full model's stage features at those
    indices; returns the features-only model for further checks."""
    import ssld_zoo

    full = ssld_zoo.load(name, pretrained=False)
    pyr = ssld_zoo.load(name, pretrained=False, features_only=True, out_indices=out_indices)
    pyr.model.load_state_dict(full.state_dict(), strict=False)  # the head is dropped
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs, ref = pyr(x), full.forward_stages(x)
    assert len(outs) == len(out_indices)
    for o, i in zip(outs, out_indices):
        torch.testing.assert_close(o, ref[i], rtol=0, atol=0)
    return pyr
