"""ResNeXt101_32xWd_wsl (the SSLD teachers): registration, weight cards, PaddleClas key names,
shapes, and the original PyTorch WSL release's key names.

The torchvision check is a second, independent proof of correctness next to ``tests/parity``:
torchvision's ResNeXt is the architecture Facebook released these weights for, so the same
weights must give the same logits in both.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnext101_32x8d
from torchvision.models.resnet import Bottleneck, ResNet

import ssld_zoo
from ssld_zoo.models.resnext_wsl import BottleneckBlock, ResNeXt101WSL, checkpoint_filter_fn
from ssld_zoo.registry import get_arch, get_weights
from tests.models.paddle_keys import assert_keys_equal_paddle_dump, meta_model

WIDTHS = {
    "resnext101_32x8d_wsl": 8,
    "resnext101_32x16d_wsl": 16,
    "resnext101_32x32d_wsl": 32,
    "resnext101_32x48d_wsl": 48,
}
TORCH_FILES = {
    8: "ig_resnext101_32x8-c38310e5.pth",
    16: "ig_resnext101_32x16-c6f796b0.pth",
    32: "ig_resnext101_32x32-e4b90b00.pth",
    48: "ig_resnext101_32x48-3e41cc8a.pth",
}


def torchvision_resnext(width: int, device: str | None = None) -> ResNet:
    """torchvision's ResNeXt-101 32x``width``d: the layout of Facebook's WSL release."""
    with torch.device(device or "cpu"):
        return ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=width)


def shapes(state) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("name", WIDTHS)
def test_registration_and_weight_card(name):
    width = WIDTHS[name]
    arch = get_arch(name)
    assert arch.paddle_name == f"ResNeXt101_32x{width}d_wsl" and arch.family == "resnext_wsl"
    card = get_weights(name)
    assert card.arch == name and not card.is_ssld
    assert card.urls == (
        f"https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
        f"ResNeXt101_32x{width}d_wsl_pretrained.pdparams",  # not ppcls's "32x16_wsl" typo
        f"https://download.pytorch.org/models/{TORCH_FILES[width]}",
    )
    assert card.license == "CC-BY-NC-4.0"
    assert card.top1_source == "PaddleClas docs/zh_CN/models/ImageNet1k/ResNeXt101_wsl.md"


def test_published_numbers():
    assert {n: get_weights(n).top1 for n in WIDTHS} == {
        "resnext101_32x8d_wsl": 82.6,
        "resnext101_32x16d_wsl": 84.2,
        "resnext101_32x32d_wsl": 85.0,
        "resnext101_32x48d_wsl": 85.4,
    }


def test_teacher_of_resnet_ssld_weights_is_registered():
    assert get_weights("resnet50_vd_ssld").teacher == "resnext101_32x16d_wsl"
    assert get_weights("resnext101_32x16d_wsl").top1 == 84.2  # 84.2 in SSLD_FACTS' teacher list


def test_keys_and_shapes_equal_paddleclas_dump():
    assert_keys_equal_paddle_dump("resnext101_32x16d_wsl", "ResNeXt101_32x16d_wsl")


@pytest.mark.parametrize("name", WIDTHS)
def test_shapes_and_features_on_meta_device(name):
    """Every width, without allocating 0.3-3.3 GB: the meta device propagates shapes only."""
    model = meta_model(name, num_classes=11)
    width = WIDTHS[name]
    assert model._conv1_0._conv1._conv.weight.shape == (32 * width, width, 3, 3)  # 32 groups
    x = torch.empty(2, 3, 96, 64, device="meta")
    feats = model.forward_stages(x)
    assert [f.module for f in model.feature_info] == [
        "_conv1_2",
        "_conv2_3",
        "_conv3_22",
        "_conv4_2",
    ]
    assert [(f.channels, f.reduction) for f in model.feature_info] == [
        (256, 4),
        (512, 8),
        (1024, 16),
        (2048, 32),
    ]
    for f, info in zip(feats, model.feature_info):
        assert f.shape == (2, info.channels, 96 // info.reduction, 64 // info.reduction)
        assert isinstance(model.get_submodule(info.module), BottleneckBlock)
    assert model.forward_head(model.final_features(feats)).shape == (2, 11)


def test_features_only_out_indices_and_classifier_reset():
    with torch.device("meta"):
        model = ssld_zoo.load(
            "resnext101_32x48d_wsl", pretrained=False, features_only=True, out_indices=(-2, -1)
        )
    assert [f.channels for f in model.feature_info] == [1024, 2048]
    assert isinstance(model.model._out, torch.nn.Identity)
    feats = model(torch.empty(1, 3, 64, 64, device="meta"))
    assert [tuple(f.shape) for f in feats] == [(1, 1024, 4, 4), (1, 2048, 2, 2)]
    net = meta_model("resnext101_32x16d_wsl")
    net.reset_classifier(3)
    assert net.get_classifier().out_features == 3 and net.num_classes == 3


@pytest.mark.parametrize("width", [8, 16, 32, 48])
def test_filter_maps_torchvision_layout_onto_paddle_names(width):
    """Key names and shapes for every width (torchvision built on the meta device)."""
    tv = torchvision_resnext(width, device="meta")
    mapped = checkpoint_filter_fn(tv.state_dict())
    ours = meta_model(f"resnext101_32x{width}d_wsl").state_dict()
    assert shapes(mapped) == shapes(ours)


def test_filter_leaves_other_layouts_alone_and_strips_dataparallel_prefix():
    ours = meta_model("resnext101_32x8d_wsl").state_dict()
    assert list(checkpoint_filter_fn(ours)) == list(ours)
    paddle_style = {"_conv_stem._conv.weight": 1, "_conv_stem._bn._mean": 2}
    assert checkpoint_filter_fn(paddle_style) == paddle_style
    tv = torchvision_resnext(8, device="meta").state_dict()
    wrapped = {f"module.{k}": v for k, v in tv.items()}
    assert shapes(checkpoint_filter_fn(wrapped)) == shapes(checkpoint_filter_fn(tv))
    assert set(checkpoint_filter_fn(tv)) == set(ours)


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, so that a mixed-up BN cannot hide behind (0, 1, 1, 0)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) * 0.5 + 0.25
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = torch.rand(n, generator=g) + 0.5


def test_torchvision_weights_give_torchvisions_logits(tmp_path):
    """A torchvision ``resnext101_32x8d`` state dict, saved as .pth (the WSL release's format)
    and loaded with ``ssld_zoo.load``, gives the same logits and stage outputs as torchvision."""
    torch.manual_seed(0)
    tv = resnext101_32x8d(weights=None).eval()
    _randomize_bn(tv)
    path = tmp_path / "ig_resnext101_32x8.pth"
    torch.save(tv.state_dict(), path)
    ours = ssld_zoo.load("resnext101_32x8d_wsl", pretrained=False, weights=path)
    assert isinstance(ours, ResNeXt101WSL) and not ours.training
    x = torch.randn(2, 3, 67, 61)
    with torch.no_grad():
        feats = ours.forward_stages(x)
        y = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        for layer, f in zip((tv.layer1, tv.layer2, tv.layer3, tv.layer4), feats):
            y = layer(y)
            assert torch.allclose(f, y, rtol=0, atol=1e-5 * y.abs().max().item())
        ref = tv(x)
        got = ours.forward_head(ours.final_features(feats))
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert torch.equal(got.argmax(1), ref.argmax(1))
