"""PP-HGNet and PP-HGNetV2: structure equal to PaddleClas 2.6.0, features, heads, weight cards.

Numerical equality with PaddleClas itself is checked by ``tests/parity``; these tests need only
torch (plus the PaddleClas key listings in ``../shared/reference/paddle_keys``).
"""

from __future__ import annotations

import pytest
import torch

import ssld_zoo
from ssld_zoo.models.pp_hgnet import DownscaleInInferDropout
from ssld_zoo.models.pp_hgnet_v2 import StemBlock
from ssld_zoo.registry import get_arch, get_weights, list_architectures
from tests.models.paddle_keys import KEYS_DIR, meta_model, paddle_style_shapes, read_key_file

V1 = ["pphgnet_tiny", "pphgnet_small", "pphgnet_base"]
V2 = [f"pphgnetv2_b{i}" for i in range(7)]


def test_every_variant_is_registered():
    archs = set(list_architectures())
    assert set(V1 + V2) <= archs
    assert {get_arch(n).family for n in V1} == {"pp_hgnet"}
    assert {get_arch(n).family for n in V2} == {"pp_hgnet_v2"}


@pytest.mark.parametrize("name", V1 + V2)
def test_keys_and_shapes_equal_paddleclas(name, resource_unavailable):
    ref = KEYS_DIR / f"{get_arch(name).paddle_name}.txt"
    if not ref.is_file():
        resource_unavailable(f"PaddleClas key listing {ref} not found: set SSLD_ZOO_PADDLE_KEYS")
    assert paddle_style_shapes(meta_model(name)) == read_key_file(ref)


@pytest.mark.parametrize("name", ["pphgnet_tiny", "pphgnetv2_b0"])
def test_forward_features_match_feature_info(name):
    model = get_arch(name).builder().eval()
    x = torch.randn(2, 3, 64, 96)
    captured = {}
    modules = dict(model.named_modules())
    for fi in model.feature_info:
        modules[fi.module].register_forward_hook(
            lambda m, i, o, key=fi.module: captured.__setitem__(key, o)
        )
    with torch.no_grad():
        feats = model.forward_stages(x)
        logits = model.forward_head(model.final_features(feats))
    assert logits.shape == (2, 1000)
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]
    assert len(feats) == len(model.feature_info) == 4
    for f, fi in zip(feats, model.feature_info):
        assert f.shape == (2, fi.channels, 64 // fi.reduction, 96 // fi.reduction)
        # The module the parity test hooks in Paddle produces exactly this stage output.
        assert torch.equal(captured[fi.module], f)


def test_stage_channels_of_the_configs():
    with torch.device("meta"):
        assert [f.channels for f in get_arch("pphgnet_base").builder().feature_info] == [
            320,
            640,
            960,
            1280,
        ]
        assert [f.channels for f in get_arch("pphgnetv2_b2").builder().feature_info] == [
            96,
            384,
            768,
            1536,
        ]


@pytest.mark.parametrize("name", ["pphgnet_tiny", "pphgnetv2_b1"])
def test_features_only_and_out_indices(name):
    model = ssld_zoo.load(name, pretrained=False, features_only=True, out_indices=(1, -1))
    assert [f.reduction for f in model.feature_info] == [8, 32]
    assert not any(k.startswith(("model.fc", "model.last_conv")) for k in model.state_dict())
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (fi.channels, 64 // fi.reduction, 64 // fi.reduction) for fi in model.feature_info
    ]
    with pytest.raises(ValueError, match="out of range"):
        ssld_zoo.load(name, pretrained=False, features_only=True, out_indices=(4,))


@pytest.mark.parametrize("name", ["pphgnet_tiny", "pphgnetv2_b0"])
def test_num_classes_and_reset_classifier(name):
    model = ssld_zoo.load(name, pretrained=False, num_classes=10).eval()
    head_conv = model.last_conv.weight
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert model.get_classifier().out_features == 10
    assert model.last_conv.weight is head_conv  # the pretrained 1x1 head conv is kept
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2048)


def test_downscale_in_infer_dropout_matches_paddle_semantics():
    drop = DownscaleInInferDropout(0.2)
    x = torch.ones(4096)
    assert torch.equal(drop.eval()(x), torch.full_like(x, 0.8))  # inference: x * (1 - p)
    torch.manual_seed(0)
    y = drop.train()(x)
    assert set(y.unique().tolist()) <= {0.0, 1.0}  # training: mask only, no 1/(1-p) rescale
    assert 0.7 < y.mean().item() < 0.9
    with pytest.raises(ValueError, match="dropout probability"):
        DownscaleInInferDropout(1.0)


def test_pphgnet_base_head_is_scaled_at_inference():
    # PaddleClas builds PPHGNet_base with drop_rate=0.2 (downscale_in_infer): the pooled
    # head features reaching the classifier are multiplied by 0.8 in eval mode.
    with torch.device("meta"):
        base, small = (get_arch(n).builder() for n in ("pphgnet_base", "pphgnet_small"))
    assert base.dropout.p == 0.2 and small.dropout.p == 0.0


def test_lab_only_where_paddle_builds_it():
    keys = set(get_arch("pphgnetv2_b0").builder().state_dict())
    assert "stem.stem1.lab.scale" in keys and "lab.bias" in keys  # head LAB too
    # No activation -> no LAB: a light layer's 1x1 conv and the stride-2 downsample.
    assert "stages.2.blocks.0.layers.0.conv1.lab.scale" not in keys
    assert "stages.2.blocks.0.layers.0.conv2.lab.scale" in keys
    assert not any(".downsample.lab." in k for k in keys)
    assert not any(
        ".lab." in k or k.startswith("lab.")
        for k in get_arch("pphgnetv2_b4").builder().state_dict()
    )


def test_stem_max_pool_never_picks_the_padding():
    # Paddle's SAME max-pool excludes the padded bottom row / right column. With negative
    # activations (possible after a learnable affine block) zero padding would win there.
    stem = StemBlock(3, 4, 4)
    x = -torch.rand(1, 4, 5, 5) - 1.0
    y = stem.pool(torch.nn.functional.pad(x, (0, 1, 0, 1), value=float("-inf")))
    assert y.shape == x.shape
    assert torch.equal(y[..., -1, -1], x[..., -1, -1])
    assert (y < 0).all()


def test_train_step_has_finite_gradients():
    model = get_arch("pphgnetv2_b0").builder(num_classes=5).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.stem.stem1.lab.scale.grad.abs().item() > 0


# --- weight cards -------------------------------------------------------------------------

_BASE = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/"


@pytest.mark.parametrize(
    "name,top1,baseline,resize",
    [
        ("pphgnet_tiny_ssld", 81.95, 79.83, 232),
        ("pphgnet_small_ssld", 83.82, 81.51, 236),
        ("pphgnet_base_ssld", 85.00, None, 236),
    ],
)
def test_pphgnet_ssld_cards(name, top1, baseline, resize):
    card = get_weights(name)
    assert card.is_ssld and card.top1 == top1 and card.baseline_top1 == baseline
    assert card.urls == (f"{_BASE}{get_arch(name).paddle_name}_ssld_pretrained.pdparams",)
    t = card.transform
    assert (t.input_size, t.resize, t.interpolation) == (224, resize, "bicubic")
    assert "PP-HGNet.md" in card.top1_source


def test_pphgnet_baselines_and_no_base_baseline():
    assert get_weights("pphgnet_tiny").top1 == 79.83
    assert get_weights("pphgnet_small").top1 == 81.51
    assert get_weights("pphgnet_base") is None  # PaddleClas publishes no plain base weights


@pytest.mark.parametrize(
    "variant,top1",
    [(0, 77.77), (1, 79.18), (2, 81.74), (3, 82.98), (4, 83.57), (5, 84.75), (6, 86.30)],
)
def test_pphgnetv2_cards_both_stages(variant, top1):
    arch = f"pphgnetv2_b{variant}"
    final, stage1 = get_weights(f"{arch}_ssld"), get_weights(f"{arch}_ssld_stage1")
    assert final.arch == stage1.arch == arch
    assert final.top1 == top1 and stage1.top1 is None
    assert final.urls == (f"{_BASE}PPHGNetV2_B{variant}_ssld_pretrained.pdparams",)
    assert stage1.urls == (f"{_BASE}PPHGNetV2_B{variant}_ssld_stage1_pretrained.pdparams",)
    assert final.transform.interpolation == "bicubic"
    assert final.transform.resize == (236 if variant == 4 else 232)
    assert get_weights(arch) is None  # no non-SSLD PP-HGNetV2 weights are published


def test_every_ssld_weight_of_the_families_is_listed():
    names = set(ssld_zoo.list_models("pphgnet*_ssld"))
    assert names == {f"{a}_ssld" for a in V1 + V2}
    assert len(ssld_zoo.list_models("pphgnetv2_b*_ssld_stage1")) == 7
