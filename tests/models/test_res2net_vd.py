"""Res2Net_vd: registration, PaddleClas key names, shapes, features, and the block's data flow.

Numerical equality with PaddleClas is the job of ``tests/parity``; these tests pin down what can
be checked without Paddle, fast.
"""

from __future__ import annotations

import pytest
import torch

import ssld_zoo
from ssld_zoo.models.res2net_vd import BottleneckBlock, Res2NetVd
from ssld_zoo.registry import get_arch, get_weights
from tests.models.helpers import (
    assert_classifier_then_pooled,
    assert_feature_modules_produce_features,
    assert_feature_shapes,
    staged_forward,
)
from tests.models.paddle_keys import assert_keys_equal_paddle_dump, meta_model, paddle_style_shapes

ARCHS = {
    "res2net50_vd_26w_4s": ("Res2Net50_vd_26w_4s", 437, (3, 4, 6, 3)),
    "res2net101_vd_26w_4s": ("Res2Net101_vd_26w_4s", 862, (3, 4, 23, 3)),
    "res2net200_vd_26w_4s": ("Res2Net200_vd_26w_4s", 1687, (3, 12, 48, 3)),
}


@pytest.mark.parametrize("name", ARCHS)
def test_registered_with_paddle_name_and_weights(name):
    paddle_name, _, _ = ARCHS[name]
    assert get_arch(name).paddle_name == paddle_name
    assert get_arch(name).family == "res2net_vd"
    base, ssld = get_weights(name), get_weights(f"{name}_ssld")
    assert base.urls[0].endswith(f"/dygraph/{paddle_name}_pretrained.pdparams")
    assert ssld.urls[0].endswith(f"/dygraph/{paddle_name}_ssld_pretrained.pdparams")
    assert "legendary_models" not in ssld.urls[0]  # an old "model_zoo" model
    assert ssld.is_ssld and ssld.baseline_top1 == base.top1 and ssld.top1 > base.top1
    assert ssld.teacher is None and "teacher" in ssld.description  # undocumented, said so


def test_published_numbers():
    got = {n: (get_weights(n).top1, get_weights(f"{n}_ssld").top1) for n in ARCHS}
    assert got == {
        "res2net50_vd_26w_4s": (79.8, 83.1),
        "res2net101_vd_26w_4s": (80.6, 83.9),
        "res2net200_vd_26w_4s": (81.2, 85.1),
    }


@pytest.mark.parametrize("name", ARCHS)
def test_state_dict_has_paddleclas_names(name):
    _, n_keys, depths = ARCHS[name]
    keys = paddle_style_shapes(meta_model(name))
    assert len(keys) == n_keys
    # Old static-graph names: deep models number stage 3 as res4a, res4b1, res4b2, ...
    last3 = f"bb_2_{depths[2] - 1}"
    letter = f"res4b{depths[2] - 1}" if name != "res2net50_vd_26w_4s" else "res4f"
    assert keys[f"{last3}.{letter}_branch2b_3._conv.weight"] == (104, 104, 3, 3)
    assert keys["bb_0_0.short._conv.weight"] == (256, 64, 1, 1)
    assert "bb_0_1.short._conv.weight" not in keys
    assert keys["out.weight"] == (2048, 1000)


@pytest.mark.parametrize("name", ARCHS)
def test_keys_and_shapes_equal_paddleclas_dump(name):
    assert_keys_equal_paddle_dump(name, ARCHS[name][0])


def test_forward_shapes_and_feature_info():
    model = ssld_zoo.load("res2net50_vd_26w_4s", pretrained=False).eval()
    x = torch.randn(2, 3, 96, 64)
    feats, logits = staged_forward(model, x)
    assert logits.shape == (2, 1000)
    assert [f.channels for f in model.feature_info] == [256, 512, 1024, 2048]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    assert [f.module for f in model.feature_info] == ["bb_0_2", "bb_1_3", "bb_2_5", "bb_3_2"]
    assert_feature_shapes(model, feats, x)
    assert all(
        isinstance(model.get_submodule(f.module), BottleneckBlock) for f in model.feature_info
    )


def test_feature_info_module_produces_the_feature():
    assert_feature_modules_produce_features(Res2NetVd(50, num_classes=10).eval())


def test_features_only_out_indices_and_odd_input():
    fp = ssld_zoo.load(
        "res2net50_vd_26w_4s", pretrained=False, features_only=True, out_indices=(1, -1)
    )
    assert isinstance(fp.model.out, torch.nn.Identity)  # the classifier is dropped
    assert [(f.channels, f.reduction) for f in fp.feature_info] == [(512, 8), (2048, 32)]
    with torch.no_grad():
        outs = fp(torch.randn(1, 3, 67, 67))  # odd: ceil-mode shortcut pooling
    assert [tuple(o.shape) for o in outs] == [(1, 512, 9, 9), (1, 2048, 3, 3)]
    with pytest.raises(ValueError, match="out of range"):
        ssld_zoo.load("res2net50_vd_26w_4s", pretrained=False, features_only=True, out_indices=(4,))


def test_num_classes_and_in_chans():
    m = ssld_zoo.load("res2net50_vd_26w_4s", pretrained=False, num_classes=7)
    assert_classifier_then_pooled(m, 7, 2048, torch.randn(1, 3, 64, 64))
    gray = Res2NetVd(50, in_chans=1, num_classes=3).eval()
    assert gray.conv1_1._conv.weight.shape == (32, 1, 3, 3)
    with torch.no_grad():
        assert gray(torch.randn(1, 1, 64, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="depth 34"):
        Res2NetVd(34)


def _probe_block(stride: int) -> BottleneckBlock:
    """A block whose every conv is the identity and BN a no-op, so its data flow is visible."""
    # As in the real model: only the stride-1 first block of stage 1 projects without pooling.
    blk = BottleneckBlock(
        8, 8, 8, stride=stride, scales=4, project=True, first_block=(stride == 1), name="res2a"
    ).eval()
    with torch.no_grad():
        for m in blk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 0.0
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
                k = m.kernel_size[0] // 2
                for c in range(m.out_channels):
                    m.weight[c, c, k, k] = 1.0
    return blk


def test_stride1_block_is_hierarchical_and_passes_last_split():
    blk = _probe_block(1)
    x = torch.rand(1, 8, 6, 6)  # positive: the ReLUs pass everything through
    with torch.no_grad():
        y = blk(x)
    s = x.split(2, dim=1)
    # y = relu(concat(y1, y1 + x2, y1 + x2 + x3, x4) + shortcut(x)) with y1 = x1.
    mid = torch.cat([s[0], s[0] + s[1], s[0] + s[1] + s[2], s[3]], dim=1)
    torch.testing.assert_close(y, mid + x)


def test_stride2_block_convolves_splits_independently_and_pools_last():
    blk = _probe_block(2)
    x = torch.rand(1, 8, 5, 5)
    with torch.no_grad():
        y = blk(x)
    s = x.split(2, dim=1)
    sub = [t[:, :, ::2, ::2] for t in s[:3]]  # identity 3x3 conv with stride 2
    # Padding excluded: the corner output averages 4 real pixels, not 4 of 9.
    last = torch.nn.functional.avg_pool2d(s[3], 3, 2, 1, count_include_pad=False)
    short = torch.nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
    torch.testing.assert_close(y, torch.cat([*sub, last], dim=1) + short)
    torch.testing.assert_close(last[0, 0, 0, 0], s[3][0, 0, :2, :2].mean())


def test_trains_in_place_ops_keep_autograd_valid():
    """The blocks add into fresh BN outputs in place; gradients must still flow everywhere."""
    model = Res2NetVd(50, num_classes=4).train()
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(1).sum()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.bb_0_0.res2a_branch2b_3._conv.weight.grad.abs().sum() > 0
