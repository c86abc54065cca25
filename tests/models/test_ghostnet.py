"""GhostNet: registration, weight cards, PaddleClas key names, shapes, features, and the
details in which PaddleClas's GhostNet differs from the original release and timm's.

Numerical equality with PaddleClas is the job of ``tests/parity``; these tests check what can be
checked without Paddle, fast.
"""

from __future__ import annotations

import pytest
import torch

import ssld_zoo
from ssld_zoo.models.ghostnet import GhostModule, SEBlock, make_divisible
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

BASE = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
SCALES = {"ghostnet_x0_5": 0.5, "ghostnet_x1_0": 1.0, "ghostnet_x1_3": 1.3}


# ---------------------------------------------------------------- registry and weight cards


def test_variants_are_registered_under_paddleclas_names():
    assert set(SCALES) <= set(list_models("ghostnet*"))
    for name, scale in SCALES.items():
        arch = get_arch(name)
        assert arch.paddle_name == f"GhostNet_x{scale:.1f}".replace(".", "_")
        assert arch.family == "ghostnet"
        assert meta_model(name).scale == scale


def test_baseline_cards():
    doc = "PaddleClas docs/zh_CN/models/ImageNet1k/GhostNet.md"
    for name, top1 in {"ghostnet_x0_5": 66.8, "ghostnet_x1_0": 74.0, "ghostnet_x1_3": 75.7}.items():
        card = get_weights(name)
        assert card.arch == name and not card.is_ssld
        assert (card.top1, card.top1_source) == (top1, doc)
        paddle_name = get_arch(name).paddle_name
        # An old "model_zoo" model: not under legendary_models/.
        assert card.urls == (f"{BASE}{paddle_name}_pretrained.pdparams",)


def test_ssld_card():
    card = get_weights("ghostnet_x1_3_ssld")
    assert card.is_ssld and card.arch == "ghostnet_x1_3"
    assert (card.top1, card.baseline_top1) == (79.4, 75.7)
    assert card.baseline_top1 == get_weights("ghostnet_x1_3").top1
    assert card.top1_source == SSLD_DOC
    assert card.teacher is None  # PaddleClas documents no teacher for it
    assert card.urls == (f"{BASE}GhostNet_x1_3_ssld_pretrained.pdparams",)
    assert list_models("ghostnet*_ssld") == ["ghostnet_x1_3_ssld"]


# ---------------------------------------------------------------- PaddleClas key names


def test_keys_and_shapes_equal_paddleclas_dump():
    assert_keys_equal_paddle_dump("ghostnet_x1_3", "GhostNet_x1_3")


def test_old_style_names_and_channel_rounding():
    keys = paddle_style_shapes(meta_model("ghostnet_x0_5"))
    # make_divisible(., 4): 16*0.5 -> 8, 48*0.5 -> 24, 960*0.5 -> 480.
    assert keys["conv1._conv.weight"] == (8, 3, 3, 3)
    assert keys["_ghostbottleneck_1.ghost_module_1.primary_conv._conv.weight"] == (12, 8, 1, 1)
    # Only stride-2 blocks have depthwise_conv ("_depthwise_depthwise" in Paddle's param names).
    assert "_ghostbottleneck_1.depthwise_conv._conv.weight" in keys
    assert not any(k.startswith("_ghostbottleneck_2.depthwise_conv") for k in keys)
    # SE: Linear layers stored [in, out], reducing to channels // 4.
    assert keys["_ghostbottleneck_3.se_block.squeeze.weight"] == (36, 9)
    assert keys["_ghostbottleneck_3.se_block.excitation.weight"] == (9, 36)
    # Projection shortcut only where stride or width changes.
    assert "_ghostbottleneck_0.shortcut_conv._conv.weight" not in keys
    assert keys["_ghostbottleneck_1.shortcut_conv._conv.weight"] == (12, 8, 1, 1)
    assert keys["conv_last._conv.weight"] == (480, 80, 1, 1)
    assert keys["fc_0._conv.weight"] == (1280, 480, 1, 1)  # 1280 at every scale
    assert keys["fc_1.weight"] == (1280, 1000)


def test_make_divisible_by_4():
    assert [make_divisible(c * 1.3, 4) for c in (16, 24, 40, 112, 160, 960)] == [
        20,
        32,
        52,
        144,
        208,
        1248,
    ]
    assert make_divisible(3.0, 4) == 4  # never below the divisor
    assert make_divisible(22.0, 4) == 24  # rounds half up


# ---------------------------------------------------------------- shapes and features


@pytest.mark.parametrize("name", SCALES)
def test_forward_shapes_and_feature_info(name):
    model = ssld_zoo.load(name, pretrained=False, num_classes=7)
    x = torch.randn(2, 3, 67, 99)  # odd sizes: every stride-2 layer pads
    feats, logits = staged_forward(model, x)
    assert logits.shape == (2, 7)
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
    assert_feature_shapes(model, feats, x, ceil=True)


def test_stage_choice():
    """One map per stride: the last block at strides 2..16, ``conv_last`` (the map the head
    pools) at 32."""
    info = [(f.module, f.channels) for f in meta_model("ghostnet_x1_0").feature_info]
    assert info == [
        ("_ghostbottleneck_0", 16),
        ("_ghostbottleneck_2", 24),
        ("_ghostbottleneck_4", 40),
        ("_ghostbottleneck_10", 112),
        ("conv_last", 960),
    ]


def test_feature_modules_are_real_submodules_that_produce_the_features():
    assert_feature_modules_produce_features(ssld_zoo.load("ghostnet_x0_5", pretrained=False))


def test_features_only_and_out_indices():
    pyr = features_only_equals_full("ghostnet_x0_5", (1, 3, -1))
    assert [(f.channels, f.reduction) for f in pyr.feature_info] == [(12, 4), (56, 16), (480, 32)]
    assert not any(k.startswith(("model.fc_0", "model.fc_1")) for k in pyr.state_dict())
    with pytest.raises(ValueError, match="out of range"):
        ssld_zoo.load("ghostnet_x0_5", pretrained=False, features_only=True, out_indices=(5,))


def test_num_classes_zero_gives_pooled_head_features_and_reset_classifier():
    model = ssld_zoo.load("ghostnet_x0_5", pretrained=False, num_classes=0)
    x = torch.randn(2, 3, 64, 64)
    assert_outputs(model, 1280, x)
    model.reset_classifier(5)
    assert_classifier(model, 5, x)


# ---------------------------------------------------------------- PaddleClas details


def test_se_gate_is_clip_not_hard_sigmoid():
    se = SEBlock(8).double()
    torch.nn.init.zeros_(se.squeeze.weight)
    torch.nn.init.zeros_(se.excitation.weight)
    gates = torch.tensor([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 3.0], dtype=torch.float64)
    with torch.no_grad():
        se.excitation.bias.copy_(gates)
        out = se(torch.ones(1, 8, 3, 3, dtype=torch.float64))
    # clip(0, 1): 0.5 stays 0.5 (a hard sigmoid would give 0.583), 1.5 becomes 1.
    torch.testing.assert_close(out[0, :, 0, 0], gates.clamp(0, 1), rtol=0, atol=0)


def test_ghost_module_concatenates_primary_then_cheap():
    gm = GhostModule(4, 6).eval()
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        out = gm(x)
        primary = gm.primary_conv(x)
        assert out.shape == (1, 6, 5, 5)
        torch.testing.assert_close(out[:, :3], primary)
        torch.testing.assert_close(out[:, 3:], gm.cheap_operation(primary))


def test_head_dropout_is_the_usual_kind():
    """GhostNet's Dropout is Paddle's default mode (upscale in train): identity at eval, unlike
    PP-LCNet's downscale_in_infer x0.8."""
    model = ssld_zoo.load("ghostnet_x0_5", pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_stages(x)
        pooled = model.fc_0(feats[-1].mean((2, 3), keepdim=True)).flatten(1)
        torch.testing.assert_close(
            model.forward_head(model.final_features(feats)), model.fc_1(pooled)
        )
