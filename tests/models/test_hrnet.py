"""HRNet_W*_C and SE_HRNet_W64_C: registration, PaddleClas key names, shapes, the four branch
features, and the fusion layers' data flow.

Numerical equality with PaddleClas is the job of ``tests/parity``; these tests pin down what can
be checked without Paddle, fast.
"""

from __future__ import annotations

import pytest
import torch

import ssld_zoo
from ssld_zoo.models.hrnet import FuseLayers, HRNet, SELayer
from ssld_zoo.registry import get_arch, get_weights
from tests.models.helpers import (
    assert_classifier_then_pooled,
    assert_feature_shapes,
    staged_forward,
)
from tests.models.paddle_keys import assert_keys_equal_paddle_dump, meta_model, paddle_style_shapes

WIDTHS = {
    "hrnet_w18_c": 18,
    "hrnet_w30_c": 30,
    "hrnet_w32_c": 32,
    "hrnet_w40_c": 40,
    "hrnet_w44_c": 44,
    "hrnet_w48_c": 48,
    "hrnet_w64_c": 64,
    "se_hrnet_w64_c": 64,
}
PADDLE_NAMES = {n: n.upper().replace("HRNET", "HRNet") for n in WIDTHS}


@pytest.fixture(scope="module")
def w18() -> HRNet:
    torch.manual_seed(0)
    return ssld_zoo.load("hrnet_w18_c", pretrained=False).eval()


@pytest.mark.parametrize("name", WIDTHS)
def test_registered_with_paddle_name(name):
    arch = get_arch(name)
    assert arch.paddle_name == PADDLE_NAMES[name] and arch.family == "hrnet"
    model = meta_model(name)
    assert model.width == WIDTHS[name] and model.has_se == name.startswith("se_")


def test_weight_cards():
    cards = {n: get_weights(n) for n in ssld_zoo.list_models("*hrnet*", pretrained=True)}
    assert set(cards) == {
        "hrnet_w18_c",
        "hrnet_w18_c_ssld",
        "hrnet_w30_c",
        "hrnet_w32_c",
        "hrnet_w40_c",
        "hrnet_w44_c",
        "hrnet_w48_c",
        "hrnet_w48_c_ssld",
        "hrnet_w64_c",
        "se_hrnet_w64_c_ssld",
    }
    assert get_weights("se_hrnet_w64_c") is None  # no plain SE_HRNet weights are published
    top1 = {n: c.top1 for n, c in cards.items()}
    assert top1 == {
        "hrnet_w18_c": 76.9,
        "hrnet_w18_c_ssld": 81.6,
        "hrnet_w30_c": 78.0,
        "hrnet_w32_c": 78.3,
        "hrnet_w40_c": 78.8,
        "hrnet_w44_c": 79.0,
        "hrnet_w48_c": 79.0,
        "hrnet_w48_c_ssld": 83.6,
        "hrnet_w64_c": 79.3,
        "se_hrnet_w64_c_ssld": 84.7,
    }
    for name, card in cards.items():
        paddle = PADDLE_NAMES[card.arch] + ("_ssld" if card.is_ssld else "")
        assert card.urls == (
            "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
            f"legendary_models/{paddle}_pretrained.pdparams",
        )
        assert card.teacher is None
        if card.is_ssld:
            assert "teacher" in card.description
    assert cards["hrnet_w18_c_ssld"].baseline_top1 == 76.9
    assert cards["hrnet_w48_c_ssld"].baseline_top1 == 79.0
    assert cards["se_hrnet_w64_c_ssld"].baseline_top1 is None


@pytest.mark.parametrize("name", ["hrnet_w18_c", "hrnet_w48_c", "se_hrnet_w64_c"])
def test_keys_and_shapes_equal_paddleclas_dump(name):
    assert_keys_equal_paddle_dump(name, PADDLE_NAMES[name])


@pytest.mark.parametrize("name", WIDTHS)
def test_state_dict_has_paddleclas_names(name):
    w = WIDTHS[name]
    keys = paddle_style_shapes(meta_model(name))
    assert len(keys) == (2075 if name.startswith("se_") else 1627)
    # The flat fuse list of a 4-branch module, in PaddleClas's order: output 0 gets 1x1 convs
    # from branches 1-3 (0-2); output 1: 3x3/2 from 0, 1x1 from 2, 3 (3-5); output 2: two 3x3/2
    # from 0, one from 1, 1x1 from 3 (6-9); output 3: three, two and one 3x3/2 (10-15).
    fuse = "st4.stage_func_list.2.fuse_func.residual_func_list"
    assert keys[f"{fuse}.2.conv.weight"] == (w, 8 * w, 1, 1)
    assert keys[f"{fuse}.6.conv.weight"] == (w, w, 3, 3)  # intermediate step keeps W
    assert keys[f"{fuse}.7.conv.weight"] == (4 * w, w, 3, 3)
    assert keys[f"{fuse}.9.conv.weight"] == (4 * w, 8 * w, 1, 1)
    assert keys[f"{fuse}.12.conv.weight"] == (8 * w, w, 3, 3)
    assert keys[f"{fuse}.15.conv.weight"] == (8 * w, 4 * w, 3, 3)
    assert f"{fuse}.16.conv.weight" not in keys
    assert keys["last_cls.func_list.3.conv_down.conv.weight"] == (1024, 8 * w, 1, 1)
    assert keys["fc.weight"] == (2048, 1000)
    if name.startswith("se_"):
        # Linear SE, reduction 16 with a plain floor: 64 // 16 = 4.
        assert keys["st2.stage_func_list.0.basic_block_list.0.0.se.fc_squeeze.weight"] == (64, 4)
        assert keys["layer1.0.se.fc_excitation.weight"] == (16, 256)


def test_forward_and_four_branch_features(w18):
    x = torch.randn(2, 3, 96, 128)
    feats, logits = staged_forward(w18, x)
    assert logits.shape == (2, 1000)
    assert [(f.channels, f.reduction, f.module) for f in w18.feature_info] == [
        (18, 4, "st4#0"),
        (36, 8, "st4#1"),
        (72, 16, "st4#2"),
        (144, 32, "st4#3"),
    ]
    assert_feature_shapes(w18, feats, x)


def test_feature_module_convention_is_hookable(w18):
    """``st4#i`` means: the sub-module ``st4`` returns the branch list, take element i."""
    seen = []
    handle = w18.get_submodule("st4").register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            feats = w18.forward_stages(torch.randn(1, 3, 64, 64))
    finally:
        handle.remove()
    for f, info in zip(feats, w18.feature_info):
        mod, idx = info.module.split("#")
        assert mod == "st4" and torch.equal(seen[0][int(idx)], f)


def test_features_only_skips_the_head_and_selects_branches():
    fp = ssld_zoo.load("hrnet_w18_c", pretrained=False, features_only=True, out_indices=(0, 3))
    assert not any(list(getattr(fp.model, n).parameters()) for n in HRNet.head_names)
    assert [(f.channels, f.reduction) for f in fp.feature_info] == [(18, 4), (144, 32)]
    with torch.no_grad():
        outs = fp(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 18, 16, 24), (1, 144, 2, 3)]
    names = {n for n, _ in fp.named_parameters()}
    assert not any(n.startswith(("model.last_cls", "model.fc")) for n in names)


def test_input_size_limit_is_explained(w18):
    with torch.no_grad():
        assert w18.forward_stages(torch.randn(1, 3, 61, 64))[0].shape[-2:] == (16, 16)
        with pytest.raises(ValueError, match="multiples of 32"):
            w18(torch.randn(1, 3, 60, 64))
    assert HRNet.fixed_input_size  # the parity harness must not feed it an odd size


def test_num_classes_and_in_chans():
    m = ssld_zoo.load("hrnet_w18_c", pretrained=False, num_classes=5)
    assert_classifier_then_pooled(m, 5, 2048, torch.randn(1, 3, 64, 64))
    gray = HRNet(18, num_classes=2, in_chans=1).eval()
    with torch.no_grad():
        assert gray(torch.randn(1, 1, 64, 64)).shape == (1, 2)


def test_se_hrnet_forward():
    m = HRNet(18, has_se=True, num_classes=3).eval()  # SE wiring at a small width
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert sum(isinstance(x, SELayer) for x in m.modules()) == 4 + 4 * (2 + 12 + 12) + 4


def test_se_layer_is_a_real_sigmoid_gate():
    se = SELayer(32)
    assert se.fc_squeeze.out_features == 2
    x = torch.rand(2, 32, 3, 3)
    with torch.no_grad():
        s = x.mean((2, 3))
        gate = torch.sigmoid(se.fc_excitation(torch.relu(se.fc_squeeze(s))))
        torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_fusion_uses_nearest_upsampling_and_strided_paths():
    fuse = FuseLayers([2, 4]).eval()
    with torch.no_grad():
        for m in fuse.modules():  # 1x1 conv 4 -> 2 keeps channels 0, 1; BN exact identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 0.0
        up, down = fuse.residual_func_list
        up.conv.weight.zero_()
        up.conv.weight[0, 0] = 1.0
        up.conv.weight[1, 1] = 1.0
        down.conv.weight.zero_()
        for c in range(2):
            down.conv.weight[c, c, 1, 1] = 1.0  # 3x3 stride 2 picking the centre pixel
        hi, lo = torch.rand(1, 2, 4, 4), torch.rand(1, 4, 2, 2)
        out_hi, out_lo = fuse([hi, lo])
    nearest = lo[:, :2].repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(out_hi, torch.relu(hi + nearest))
    expect_lo = lo.clone()
    expect_lo[:, :2] += hi[:, :, ::2, ::2]
    torch.testing.assert_close(out_lo, torch.relu(expect_lo))


def test_trains_in_place_ops_keep_autograd_valid():
    """Blocks and fusion add into fresh tensors in place; gradients must still flow everywhere."""
    model = HRNet(18, has_se=True, num_classes=4).train()
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(1).sum()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # A fusion path from the lowest to the highest resolution is part of the graph.
    assert grads["st4.stage_func_list.2.fuse_func.residual_func_list.2.conv.weight"].abs().sum() > 0
