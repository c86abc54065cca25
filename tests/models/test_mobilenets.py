"""MobileNetV1/V2/V3: registration, weight cards, PaddleClas key names, shapes, features, and
the details that make PaddleClas's MobileNets differ from torchvision's and timm's.

Numerical equality with PaddleClas is the job of ``tests/parity``; these tests pin down what can
be checked without Paddle, fast.
"""

from __future__ import annotations

import pytest
import torch

import ssld_zoo
from ssld_zoo.models import mobilenet_v1, mobilenet_v2, mobilenet_v3
from ssld_zoo.models.mobilenet_v3 import (
    DownscaleInInferDropout,
    Hardsigmoid,
    ResidualUnit,
    make_divisible,
)
from ssld_zoo.registry import get_arch, get_weights, list_architectures
from tests.models.helpers import (
    assert_feature_modules_produce_features,
    assert_feature_shapes,
    staged_forward,
)
from tests.models.paddle_keys import assert_keys_equal_paddle_dump, meta_model, paddle_style_shapes

V1 = {
    "mobilenetv1_x0_25": 0.25,
    "mobilenetv1_x0_5": 0.5,
    "mobilenetv1_x0_75": 0.75,
    "mobilenetv1": 1.0,
}
V2 = {
    "mobilenetv2_x0_25": 0.25,
    "mobilenetv2_x0_5": 0.5,
    "mobilenetv2_x0_75": 0.75,
    "mobilenetv2": 1.0,
    "mobilenetv2_x1_5": 1.5,
    "mobilenetv2_x2_0": 2.0,
}
V3 = {
    f"mobilenetv3_{c}_{s}": (c, float(s[1:].replace("_", ".")))
    for c in ("large", "small")
    for s in ("x0_35", "x0_5", "x0_75", "x1_0", "x1_25")
}
ALL = [*V1, *V2, *V3]
FAMILY = {
    **{n: "mobilenet_v1" for n in V1},
    **{n: "mobilenet_v2" for n in V2},
    **{n: "mobilenet_v3" for n in V3},
}
# Architectures whose full key list PaddleClas 2.6.0 dumped beside this repo.
KEY_DUMPS = {
    "mobilenetv1": "MobileNetV1",
    "mobilenetv2": "MobileNetV2",
    "mobilenetv3_large_x1_0": "MobileNetV3_large_x1_0",
    "mobilenetv3_small_x1_0": "MobileNetV3_small_x1_0",
    "mobilenetv3_small_x0_35": "MobileNetV3_small_x0_35",
}


# ---------------------------------------------------------------- registry and weight cards


def test_every_variant_is_registered_under_paddleclas_name():
    for name in ALL:
        arch = get_arch(name)
        assert arch.paddle_name.lower() == name
        assert arch.family == FAMILY[name]
    families = {get_arch(n).family for n in list_architectures()}
    assert {"mobilenet_v1", "mobilenet_v2", "mobilenet_v3"} <= families


@pytest.mark.parametrize("name", ALL)
def test_every_variant_has_its_baseline_weights(name):
    card = get_weights(name)
    paddle_name = get_arch(name).paddle_name
    assert card is not None and card.arch == name and not card.is_ssld
    # MobileNetV2 is an old "model_zoo" model: its files are not under legendary_models/.
    folder = "dygraph/" if FAMILY[name] == "mobilenet_v2" else "dygraph/legendary_models/"
    assert card.urls == (
        f"https://paddle-imagenet-models-name.bj.bcebos.com/{folder}"
        f"{paddle_name}_pretrained.pdparams",
    )
    assert card.top1_source.startswith("PaddleClas docs/zh_CN/models/ImageNet1k/MobileNetV")
    assert 50 < card.top1 < 80


def test_published_baseline_numbers():
    got = {n: get_weights(n).top1 for n in ALL}
    assert got == {
        "mobilenetv1_x0_25": 51.4,
        "mobilenetv1_x0_5": 63.5,
        "mobilenetv1_x0_75": 68.8,
        "mobilenetv1": 71.0,
        "mobilenetv2_x0_25": 53.2,
        "mobilenetv2_x0_5": 65.0,
        "mobilenetv2_x0_75": 69.8,
        "mobilenetv2": 72.2,
        "mobilenetv2_x1_5": 74.1,
        "mobilenetv2_x2_0": 75.2,
        "mobilenetv3_large_x0_35": 64.3,
        "mobilenetv3_large_x0_5": 69.2,
        "mobilenetv3_large_x0_75": 73.1,
        "mobilenetv3_large_x1_0": 75.3,
        "mobilenetv3_large_x1_25": 76.4,
        "mobilenetv3_small_x0_35": 53.0,
        "mobilenetv3_small_x0_5": 59.2,
        "mobilenetv3_small_x0_75": 66.0,
        "mobilenetv3_small_x1_0": 68.2,
        "mobilenetv3_small_x1_25": 70.7,
    }


SSLD = {  # weight name -> (arch, top1, baseline top1, folder)
    "mobilenetv1_ssld": ("mobilenetv1", 77.9, 71.0, "legendary_models/MobileNetV1"),
    "mobilenetv2_ssld": ("mobilenetv2", 76.74, 72.2, "MobileNetV2"),
    "mobilenetv3_large_x1_0_ssld": (
        "mobilenetv3_large_x1_0",
        79.0,
        75.3,
        "legendary_models/MobileNetV3_large_x1_0",
    ),
    "mobilenetv3_small_x1_0_ssld": (
        "mobilenetv3_small_x1_0",
        71.3,
        68.2,
        "legendary_models/MobileNetV3_small_x1_0",
    ),
    "mobilenetv3_small_x0_35_ssld": (
        "mobilenetv3_small_x0_35",
        55.6,
        53.0,
        "legendary_models/MobileNetV3_small_x0_35",
    ),
}


@pytest.mark.parametrize("name", SSLD)
def test_ssld_cards(name):
    arch, top1, base, stem = SSLD[name]
    card = get_weights(name)
    assert card.is_ssld and card.arch == arch
    assert (card.top1, card.baseline_top1) == (top1, base)
    assert card.baseline_top1 == get_weights(arch).top1
    assert card.teacher == "resnet50_vd_ssld"  # the MobileNets' teacher, per the SSLD doc
    assert get_weights(card.teacher) is not None
    assert card.top1_source == "PaddleClas docs/zh_CN/training/advanced/ssld.md"
    assert card.urls == (
        f"https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
        f"{stem}_ssld_pretrained.pdparams",
    )


# ---------------------------------------------------------------- PaddleClas key names


@pytest.mark.parametrize("name", KEY_DUMPS)
def test_keys_and_shapes_equal_paddleclas_dump(name):
    assert_keys_equal_paddle_dump(name, KEY_DUMPS[name])


def test_mobilenetv2_old_style_names():
    keys = paddle_style_shapes(meta_model("mobilenetv2_x0_5"))
    # Stage i holds _first_block, then conv<i>_2 ... conv<i>_n; head is conv9 + out.
    assert keys["conv4._first_block._expand_conv._conv.weight"] == (72, 12, 1, 1)
    assert keys["conv4.conv4_3._linear_conv._batch_norm._variance"] == (16,)
    assert "conv4.conv4_4._linear_conv._conv.weight" not in keys
    assert keys["conv9._conv.weight"] == (1280, 160, 1, 1)  # 1280 kept below scale 1
    assert keys["out.weight"] == (1280, 1000)
    wide = paddle_style_shapes(meta_model("mobilenetv2_x1_5"))
    assert wide["conv9._conv.weight"] == (1920, 480, 1, 1)  # int(1280 * 1.5) above scale 1


# ---------------------------------------------------------------- shapes and features


@pytest.mark.parametrize("name", ALL)
def test_forward_shapes_and_feature_info(name):
    model = ssld_zoo.load(name, pretrained=False, num_classes=7)
    x = torch.randn(2, 3, 64, 96)
    feats, logits = staged_forward(model, x)
    assert logits.shape == (2, 7)
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
    assert_feature_shapes(model, feats, x)


def test_feature_modules_are_real_submodules_that_produce_the_features():
    for name in ("mobilenetv1", "mobilenetv2", "mobilenetv3_large_x1_0", "mobilenetv3_small_x1_0"):
        assert_feature_modules_produce_features(ssld_zoo.load(name, pretrained=False))


def test_stage_choice_matches_timm_convention():
    """Strides 2..32; the stride-32 stage of MobileNetV3 is the wide 1x1 conv (as timm's and
    torchvision's feature extractors), of V1/V2 the last block (as timm's)."""

    def info(name):
        return [(f.module, f.channels) for f in meta_model(name).feature_info]

    assert info("mobilenetv1") == [
        ("blocks.0", 64),
        ("blocks.2", 128),
        ("blocks.4", 256),
        ("blocks.10", 512),
        ("blocks.12", 1024),
    ]
    assert info("mobilenetv2") == [
        ("conv2", 16),
        ("conv3", 24),
        ("conv4", 32),
        ("conv6", 96),
        ("conv8", 320),
    ]
    assert info("mobilenetv3_large_x1_0") == [
        ("blocks.0", 16),
        ("blocks.2", 24),
        ("blocks.5", 40),
        ("blocks.11", 112),
        ("last_second_conv", 960),
    ]
    assert info("mobilenetv3_small_x1_0") == [
        ("conv", 16),
        ("blocks.0", 16),
        ("blocks.2", 24),
        ("blocks.7", 48),
        ("last_second_conv", 576),
    ]


@pytest.mark.parametrize("name", ["mobilenetv1_x0_5", "mobilenetv2", "mobilenetv3_small_x0_75"])
def test_features_only_with_out_indices(name):
    full = ssld_zoo.load(name, pretrained=False)
    model = ssld_zoo.load(name, pretrained=False, features_only=True, out_indices=(1, -1))
    assert [f.module for f in model.feature_info] == [
        full.feature_info[1].module,
        full.feature_info[-1].module,
    ]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 96, 64))
    assert len(feats) == 2
    for f, info in zip(feats, model.feature_info):
        assert f.shape == (1, info.channels, 96 // info.reduction, 64 // info.reduction)
    # The classifier-only layers are dropped.
    for head in full.head_names:
        assert not list(getattr(model.model, head).parameters())  # pruned
    with pytest.raises(ValueError, match="out_indices"):
        ssld_zoo.load(name, pretrained=False, features_only=True, out_indices=(5,))


@pytest.mark.parametrize(
    "name", ["mobilenetv1_x0_25", "mobilenetv2_x0_5", "mobilenetv3_large_x0_35"]
)
def test_num_classes_replacement_keeps_backbone_weights(name, tmp_path):
    src = ssld_zoo.load(name, pretrained=False)
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    model = ssld_zoo.load(name, pretrained=False, weights=path, num_classes=5)
    classifier = model.get_classifier()
    assert isinstance(classifier, torch.nn.Linear) and classifier.out_features == 5
    assert model.num_classes == 5
    head = {k for k in src.state_dict() if k.startswith(src.head_names[-1] + ".")}
    assert head  # the classifier's own tensors
    new = model.state_dict()
    for k, v in src.state_dict().items():
        if k not in head:
            assert torch.equal(new[k], v), k
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    model.reset_classifier(0)
    with torch.no_grad():
        pooled = model(torch.randn(1, 3, 64, 64))
    assert pooled.shape == (1, classifier.in_features)


def test_training_step_runs_and_reaches_every_parameter():
    for name in ("mobilenetv1_x0_25", "mobilenetv2_x0_25", "mobilenetv3_small_x0_35"):
        model = ssld_zoo.load(name, pretrained=False, num_classes=3).train()
        model(torch.randn(2, 3, 32, 32)).logsumexp(1).sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, (name, missing)


# ---------------------------------------------------------------- PaddleClas-specific details


def test_make_divisible_is_paddles_rounding():
    assert make_divisible(16 * 0.35) == 8  # floor at the divisor
    assert make_divisible(72 * 0.35) == 24  # 25.2 -> 24 (within 10%)
    assert make_divisible(40 * 0.35) == 16  # 14 -> int(18) // 8 * 8 = 16
    assert make_divisible(960 * 0.35) == 336
    assert make_divisible(88 * 0.75) == 64  # 66 -> 64
    assert make_divisible(13.0) == 16  # 13 -> 16 (rounds half up)
    assert make_divisible(11.0) == 16  # 11 -> 8 is < 0.9 * 11: one step up


def test_se_gate_is_paddles_hardsigmoid_not_torchs():
    gate = Hardsigmoid(0.2, 0.5)
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 3.0], dtype=torch.float64)
    assert torch.allclose(
        gate(x), torch.tensor([0.0, 0.0, 0.5, 0.7, 1.0, 1.0], dtype=torch.float64)
    )
    assert not torch.allclose(gate(x), torch.nn.functional.hardsigmoid(x))
    se = meta_model("mobilenetv3_large_x1_0").blocks[3].mid_se
    assert abs(se.hardsigmoid.slope - 0.2) < 1e-8 and se.hardsigmoid.offset == 0.5
    assert (se.conv1.in_channels, se.conv1.out_channels) == (72, 18)  # mid // 4
    assert se.conv1.bias is not None and se.conv2.bias is not None


def test_head_dropout_scales_at_inference_and_not_in_training():
    drop = DownscaleInInferDropout(0.2)
    x = torch.rand(4000, dtype=torch.float64) + 1.0
    drop.eval()
    assert torch.allclose(drop(x), x * 0.8)
    drop.train()
    y = drop(x)
    kept = y != 0
    assert torch.equal(y[kept], x[kept])  # kept units are not rescaled by 1 / (1 - p)
    assert 0.75 < kept.double().mean() < 0.85
    model = ssld_zoo.load("mobilenetv3_small_x0_35", pretrained=False)
    assert isinstance(model.dropout, DownscaleInInferDropout) and model.dropout.p == 0.2
    with pytest.raises(ValueError, match="dropout"):
        DownscaleInInferDropout(1.0)


def test_mobilenetv3_every_block_has_an_expand_conv_and_shortcuts_by_shape():
    model = meta_model("mobilenetv3_large_x1_0")
    first = model.blocks[0]
    assert isinstance(first, ResidualUnit)
    assert first.expand_conv.conv.in_channels == first.expand_conv.conv.out_channels == 16
    assert [b.if_shortcut for b in model.blocks] == [
        True,
        False,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        True,
        False,
        True,
        False,
        True,
        True,
    ]
    assert [b.mid_se is not None for b in model.blocks] == [c[3] for c in mobilenet_v3._LARGE]
    assert model.last_conv.bias is None and model.last_conv.out_channels == 1280


def test_mobilenetv2_residual_on_all_but_each_stages_first_block():
    model = meta_model("mobilenetv2")
    for i in range(2, 9):
        stage = getattr(model, f"conv{i}")
        units = [stage._first_block] + [getattr(stage, n) for n in stage._rest]
        assert [u.shortcut for u in units] == [False] + [True] * (len(units) - 1)
        assert len(units) == mobilenet_v2._SETTINGS[i - 2][2]


def test_mobilenetv1_width_scaling():
    keys = paddle_style_shapes(meta_model("mobilenetv1_x0_75"))
    assert keys["conv.conv.weight"] == (24, 3, 3, 3)
    assert keys["blocks.11.depthwise_conv.conv.weight"] == (384, 1, 3, 3)  # depthwise
    assert keys["blocks.12.pointwise_conv.conv.weight"] == (768, 768, 1, 1)
    assert keys["fc.weight"] == (768, 1000)
    assert len(mobilenet_v1._BLOCKS) == 13


def test_unknown_mobilenetv3_config_is_refused():
    with pytest.raises(ValueError, match="medium"):
        mobilenet_v3.MobileNetV3("medium")
