"""ssld_zoo.deploy.fuse: re-parameterised, BatchNorm-folded models equal the eager ones."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import ssld_zoo
from ssld_zoo.deploy import fuse
from ssld_zoo.registry import get_arch, list_architectures
from tests.models.helpers import SMALLEST_MODELS, random_bn_model


def _assert_same(got, want) -> None:
    got = got if isinstance(got, (list, tuple)) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        scale = float(w.abs().max())
        assert scale > 1e-3  # randomised BatchNorms: outputs far from zero, the test can fail
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4 * scale)


def _forward_counting_batchnorms(model: nn.Module, x: torch.Tensor):
    """The output of ``model(x)`` and how many BatchNorms that forward ran (PP-LCNetV2 keeps
    its re-parameterised branches, BatchNorms included, as modules that no longer run)."""
    ran = []
    handles = [
        m.register_forward_hook(lambda *a: ran.append(1))
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    try:
        return model(x), len(ran)
    finally:
        for h in handles:
            h.remove()


def test_the_models_below_cover_every_family():
    families = {get_arch(n).family for n in list_architectures()}
    assert {get_arch(n).family for n in SMALLEST_MODELS} == families


@pytest.mark.parametrize("name", SMALLEST_MODELS)
@torch.no_grad()
def test_fused_model_equals_eager_for_every_family(name):
    model = random_bn_model(name)
    eager = copy.deepcopy(model)
    x = torch.randn(2, 3, 96, 96)  # another batch and size than the probe (HRNet: 32k)
    want, bns = _forward_counting_batchnorms(eager, x)
    assert fuse(model, torch.randn(1, 3, 64, 64)) is model
    got, left = _forward_counting_batchnorms(model, x)
    # NextViT normalises the inputs of its attention and MLP blocks (no convolution before)
    assert left <= (0.5 if name.startswith("nextvit") else 0.1) * bns, (left, bns)
    _assert_same(got, want)


@torch.no_grad()
def test_fuse_re_parameterises_pplcnetv2_with_its_default_probe():
    model = random_bn_model("pplcnetv2_small")
    eager = copy.deepcopy(model)
    rep = [m for m in model.modules() if getattr(m, "use_rep", False)]
    assert rep and not any(m.is_repped for m in rep)
    state = torch.get_rng_state()
    fuse(model)  # probe: one image at the model's input size, from a private generator
    assert torch.equal(torch.get_rng_state(), state)
    assert all(m.is_repped for m in rep)
    x = torch.randn(2, 3, 64, 64)
    _assert_same(model(x), eager(x))


@pytest.mark.parametrize("name", ["resnet18_vd", "pplcnetv2_small", "mobilenetv3_small_x0_35"])
@pytest.mark.parametrize("order", ["fuse, then channels_last", "channels_last, then fuse"])
@torch.no_grad()
def test_fused_model_runs_in_channels_last(name, order):
    model = random_bn_model(name)
    eager = copy.deepcopy(model)
    probe = torch.randn(1, 3, 64, 64)
    if order.startswith("fuse"):
        fuse(model, probe).to(memory_format=torch.channels_last)
    else:
        fuse(
            model.to(memory_format=torch.channels_last),
            probe.contiguous(memory_format=torch.channels_last),
        )
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    x = torch.randn(2, 3, 80, 80)
    got = model(x.contiguous(memory_format=torch.channels_last))
    _assert_same(got, eager(x))


@torch.no_grad()
def test_fuse_takes_a_features_only_model():
    model = random_bn_model("resnet18_vd", features_only=True, out_indices=(1, 3))
    eager = copy.deepcopy(model)
    fuse(model, torch.randn(1, 3, 64, 64))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    _assert_same(model(x), eager(x))


def test_fuse_refuses_a_training_model():
    with pytest.raises(ValueError, match="eval-mode"):
        fuse(ssld_zoo.load("pplcnet_x0_25", pretrained=False).train())
