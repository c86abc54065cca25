"""PP-LCNet and PP-LCNetV2: registration, weight cards, PaddleClas key names, shapes, features,
V2's re-parameterisation, and the Paddle details that change the numbers (hardsigmoid slope,
downscale-in-infer dropout).

Numerical equality with PaddleClas is the job of ``tests/parity``; these tests check what can be
checked without Paddle, fast.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ssld_zoo
from ssld_zoo.models.pp_lcnet import DownscaleInInferDropout, PaddleHardsigmoid, make_divisible
from ssld_zoo.models.pp_lcnet_v2 import RepDepthwiseSeparable
from ssld_zoo.registry import SSLD_DOC, get_arch, get_weights, list_models
from tests.models.helpers import (
    assert_classifier,
    assert_feature_modules_produce_features,
    assert_feature_shapes,
    assert_outputs,
    features_only_equals_full,
    staged_forward,
)
from tests.models.paddle_keys import assert_keys_equal_paddle_dump, meta_model, paddle_style_shapes

LEGENDARY = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/"
V1 = {
    "pplcnet_x0_25": 0.25,
    "pplcnet_x0_35": 0.35,
    "pplcnet_x0_5": 0.5,
    "pplcnet_x0_75": 0.75,
    "pplcnet_x1_0": 1.0,
    "pplcnet_x1_5": 1.5,
    "pplcnet_x2_0": 2.0,
    "pplcnet_x2_5": 2.5,
}
V2 = {
    "pplcnetv2_small": (0.75, [2, 2, 4, 2]),
    "pplcnetv2_base": (1.0, [2, 2, 6, 2]),
    "pplcnetv2_large": (1.25, [2, 2, 8, 2]),
}
KEY_DUMPS = {
    "pplcnet_x0_25": "PPLCNet_x0_25",
    "pplcnet_x0_5": "PPLCNet_x0_5",
    "pplcnet_x1_0": "PPLCNet_x1_0",
    "pplcnet_x2_5": "PPLCNet_x2_5",
    "pplcnetv2_base": "PPLCNetV2_base",
}


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics, so that folding them (re-parameterisation) is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g) * 0.2
            m.running_mean = torch.randn(n, generator=g) * 0.2
            m.running_var = torch.rand(n, generator=g) * 1.5 + 0.5
    return model


# ---------------------------------------------------------------- registry and weight cards


def test_variants_are_registered_under_paddleclas_names():
    for name in V1:
        arch = get_arch(name)
        assert arch.paddle_name == "PPLCNet_" + name.split("_", 1)[1]
        assert arch.family == "pp_lcnet"
        assert meta_model(name).scale == V1[name]
    for name, (scale, depths) in V2.items():
        arch = get_arch(name)
        assert arch.paddle_name == "PPLCNetV2_" + name.split("_", 1)[1]
        assert arch.family == "pp_lcnet_v2"
        model = meta_model(name)
        assert model.scale == scale
        assert [len(s) for s in model.stages] == depths


def test_baseline_cards():
    doc = "PaddleClas docs/zh_CN/models/ImageNet1k/PP-LCNet.md"
    published = {
        "pplcnet_x0_25": 51.86,
        "pplcnet_x0_35": 58.09,
        "pplcnet_x0_5": 63.14,
        "pplcnet_x0_75": 68.18,
        "pplcnet_x1_0": 71.32,
        "pplcnet_x1_5": 73.71,
        "pplcnet_x2_0": 75.18,
        "pplcnet_x2_5": 76.60,
    }
    for name, top1 in published.items():
        card = get_weights(name)
        assert card.arch == name and not card.is_ssld
        assert (card.top1, card.top1_source) == (top1, doc)
        assert card.urls == (f"{LEGENDARY}{get_arch(name).paddle_name}_pretrained.pdparams",)
    for name in V2:
        card = get_weights(name)
        assert card.urls == (f"{LEGENDARY}{get_arch(name).paddle_name}_pretrained.pdparams",)
    assert get_weights("pplcnetv2_base").top1 == 77.04
    # PaddleClas publishes no accuracy for the small and large V2 weights.
    assert get_weights("pplcnetv2_small").top1 is None
    assert get_weights("pplcnetv2_large").top1 is None


SSLD = {  # weight name -> (top1, baseline top1, teacher)
    "pplcnet_x0_25_ssld": (53.43, 51.86, None),
    "pplcnet_x0_5_ssld": (66.10, 63.14, None),
    "pplcnet_x1_0_ssld": (74.39, 71.32, "resnet50_vd_ssld"),
    "pplcnet_x2_5_ssld": (80.82, 76.60, "resnet50_vd_ssld"),
    "pplcnetv2_base_ssld": (80.10, 77.04, None),
}


@pytest.mark.parametrize("name", SSLD)
def test_ssld_cards(name):
    top1, base, teacher = SSLD[name]
    card = get_weights(name)
    arch = name[: -len("_ssld")]
    assert card.is_ssld and card.arch == arch
    assert (card.top1, card.baseline_top1, card.teacher) == (top1, base, teacher)
    assert card.baseline_top1 == get_weights(arch).top1
    assert card.top1_source == SSLD_DOC
    assert card.urls == (f"{LEGENDARY}{get_arch(arch).paddle_name}_ssld_pretrained.pdparams",)
    if teacher is not None:
        assert get_weights(teacher) is not None  # a loadable zoo name


def test_exactly_the_published_ssld_weights():
    assert list_models("pplcnet*_ssld") == sorted(SSLD)


# ---------------------------------------------------------------- PaddleClas key names


@pytest.mark.parametrize("name", KEY_DUMPS)
def test_keys_and_shapes_equal_paddleclas_dump(name):
    assert_keys_equal_paddle_dump(name, KEY_DUMPS[name])


def test_pplcnet_structure():
    keys = paddle_style_shapes(meta_model("pplcnet_x0_35"))
    assert keys["conv1.conv.weight"] == (8, 3, 3, 3)  # make_divisible(16 * 0.35, 8) = 8
    assert keys["blocks5.1.dw_conv.conv.weight"][-2:] == (5, 5)  # 5x5 from blocks5.1 on
    assert keys["blocks5.0.dw_conv.conv.weight"][-2:] == (3, 3)
    assert {k.split(".")[0] for k in keys if ".se." in k} == {"blocks6"}  # SE: last stage only
    assert keys["last_conv.weight"] == (1280, 176, 1, 1)
    assert "last_conv.bias" not in keys  # no bias, no BN in the head conv
    assert [make_divisible(v) for v in (5.6, 11.2, 89.6, 179.2)] == [8, 16, 88, 176]


def test_pplcnetv2_structure():
    model = meta_model("pplcnetv2_base")
    blocks = [m for m in model.modules() if isinstance(m, RepDepthwiseSeparable)]
    # Kernels 5, 3 and (stride 1 only) 1 in the re-parameterisable stages 3 and 4.
    assert [len(b.dw_conv_list) for b in model.stages[2]] == [2, 3, 3, 3, 3, 3]
    assert [len(b.dw_conv_list) for b in model.stages[3]] == [2, 3]
    assert all(b.dw_conv_list is None for b in model.stages[0])
    # Shortcuts only in stage 4 after its first block; SE only in stage 3; split pw in stage 3.
    assert [b.use_shortcut for b in blocks] == [False] * (1 + 2 + 2 + 6) + [False, True]
    assert all(b.se is not None for b in model.stages[2])
    assert sum(b.se is not None for b in blocks) == 6
    assert all(b.pw_conv is None for b in model.stages[2])
    assert isinstance(model.stages[2][0].se.hardsigmoid, torch.nn.Sigmoid)  # a real sigmoid
    assert isinstance(model.act, torch.nn.ReLU)


# ---------------------------------------------------------------- shapes and features


@pytest.mark.parametrize("name", ["pplcnet_x0_25", "pplcnet_x1_0", "pplcnetv2_small"])
def test_forward_shapes_and_feature_info(name):
    model = ssld_zoo.load(name, pretrained=False, num_classes=7)
    x = torch.randn(2, 3, 67, 99)  # odd sizes: every stride-2 layer pads
    feats, logits = staged_forward(model, x)
    assert logits.shape == (2, 7)
    assert_feature_shapes(model, feats, x, ceil=True)


def test_stage_choice():
    """PaddleClas's own stage patterns: blocks2..blocks6 (V1), stages.0..3 (V2)."""

    def info(name):
        return [(f.module, f.channels, f.reduction) for f in meta_model(name).feature_info]

    assert info("pplcnet_x1_0") == [
        ("blocks2", 32, 2),
        ("blocks3", 64, 4),
        ("blocks4", 128, 8),
        ("blocks5", 256, 16),
        ("blocks6", 512, 32),
    ]
    assert info("pplcnetv2_base") == [
        ("stages.0", 128, 4),
        ("stages.1", 256, 8),
        ("stages.2", 512, 16),
        ("stages.3", 1024, 32),
    ]
    assert [i[1] for i in info("pplcnet_x2_5")] == [80, 160, 320, 640, 1280]
    assert [i[1] for i in info("pplcnetv2_large")] == [160, 320, 640, 1280]


@pytest.mark.parametrize("name", ["pplcnet_x0_25", "pplcnetv2_small"])
def test_feature_modules_are_real_submodules_that_produce_the_features(name):
    assert_feature_modules_produce_features(ssld_zoo.load(name, pretrained=False))


@pytest.mark.parametrize(
    "name,indices,expected",
    [
        ("pplcnet_x0_25", (0, 2, 4), [(8, 2), (32, 8), (128, 32)]),
        ("pplcnetv2_small", (-2, -1), [(384, 16), (768, 32)]),
    ],
)
def test_features_only_and_out_indices(name, indices, expected):
    pyr = features_only_equals_full(name, indices)
    assert [(f.channels, f.reduction) for f in pyr.feature_info] == expected
    assert not any(k.startswith(("model.fc", "model.last_conv")) for k in pyr.state_dict())
    with pytest.raises(ValueError, match="out of range"):
        ssld_zoo.load(name, pretrained=False, features_only=True, out_indices=(7,))


@pytest.mark.parametrize("name,width", [("pplcnet_x0_25", 1280), ("pplcnetv2_small", 1280)])
def test_num_classes_zero_and_reset_classifier(name, width):
    model = ssld_zoo.load(name, pretrained=False, num_classes=0)
    x = torch.randn(2, 3, 64, 64)
    assert_outputs(model, width, x)
    model.reset_classifier(3)
    assert_classifier(model, 3, x)


def test_paddleclas_options():
    model = meta_model("pplcnet_x1_0", use_last_conv=False, num_classes=10)
    assert model.last_conv is None and model.fc.in_features == 512
    model = meta_model("pplcnet_x1_0", stride_list=(2, 2, 2, 2, 1))
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 16]
    with pytest.raises(ValueError, match="stride_list needs 5"):
        meta_model("pplcnet_x1_0", stride_list=(2, 2))
    with pytest.raises(ValueError, match="activation 'gelu' is not supported"):
        meta_model("pplcnetv2_base", act="gelu")


# ---------------------------------------------------------------- Paddle details


def test_paddle_hardsigmoid_slope():
    x = torch.linspace(-4, 4, 1001, dtype=torch.float64)
    y = PaddleHardsigmoid()(x)
    # Paddle's slope 0.1666667 reaches its kernel as a float32.
    torch.testing.assert_close(y, (x * 0.16666670143604279 + 0.5).clamp(0, 1), rtol=0, atol=0)
    diff = (y - F.hardsigmoid(x)).abs().max().item()
    assert 1e-8 < diff < 1e-6  # torch's x/6 + 1/2 is close but not equal in float64


def test_downscale_in_infer_dropout():
    d = DownscaleInInferDropout(0.2)
    x = torch.randn(4, 1280, 1, 1, dtype=torch.float64)
    d.eval()
    # At inference: x * (1 - p), with 1 - p computed in float32 as Paddle's kernel does.
    torch.testing.assert_close(d(x), x * 0.800000011920929, rtol=0, atol=0)
    d.train()
    torch.manual_seed(0)
    y = d(x)
    kept = y != 0
    assert 0.7 < kept.double().mean() < 0.9
    torch.testing.assert_close(y[kept], x[kept])  # kept elements are not rescaled
    assert torch.equal(DownscaleInInferDropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="dropout probability"):
        DownscaleInInferDropout(1.0)


@pytest.mark.parametrize("name", ["pplcnet_x0_25", "pplcnetv2_small"])
def test_head_scales_by_0_8_at_inference(name):
    model = ssld_zoo.load(name, pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_stages(x)
        pooled = model.act(model.last_conv(feats[-1].mean((2, 3), keepdim=True))).flatten(1)
        torch.testing.assert_close(
            model.forward_head(model.final_features(feats)), model.fc(pooled * 0.800000011920929)
        )


def test_pplcnetv2_re_parameterize_keeps_outputs_and_keys():
    model = randomise_bn(ssld_zoo.load("pplcnetv2_small", pretrained=False)).double().eval()
    keys = list(model.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)  # small: float64 depthwise is slow
    with torch.no_grad():
        before = model(x)
        assert model.re_parameterize() is model
        after = model(x)
    fused = [m for m in model.modules() if isinstance(m, RepDepthwiseSeparable) and m.use_rep]
    assert len(fused) == 6 and all(m.is_repped for m in fused)
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)
    assert list(model.state_dict()) == keys  # still loadable/savable as PaddleClas's layout
    # The fused conv alone now computes the block: break a branch and nothing changes.
    with torch.no_grad():
        fused[0].dw_conv_list[0].conv.weight.zero_()
        torch.testing.assert_close(model(x), after, rtol=0, atol=0)
