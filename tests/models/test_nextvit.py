"""NextViT: structure equal to PaddleClas 2.6.0, stage features, heads, weight cards.

Numerical equality with PaddleClas itself is checked by ``tests/parity``.
"""

from __future__ import annotations

import pytest
import torch

import ssld_zoo
from ssld_zoo.models.nextvit import E_MHSA
from ssld_zoo.registry import get_arch, get_weights, list_architectures
from tests.models.paddle_keys import KEYS_DIR, meta_model, paddle_style_shapes, read_key_file

NAMES = [f"nextvit_{s}_{r}" for s in ("small", "base", "large") for r in (224, 384)]


def test_every_variant_is_registered():
    assert set(NAMES) <= set(list_architectures())
    assert {get_arch(n).family for n in NAMES} == {"nextvit"}


@pytest.mark.parametrize("name", NAMES)
def test_keys_and_shapes_equal_paddleclas(name, resource_unavailable):
    ref = KEYS_DIR / f"{get_arch(name).paddle_name}.txt"
    if not ref.is_file():
        resource_unavailable(f"PaddleClas key listing {ref} not found: set SSLD_ZOO_PADDLE_KEYS")
    assert paddle_style_shapes(meta_model(name)) == read_key_file(ref)


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_224_and_384_are_the_same_architecture(size):
    with torch.device("meta"):
        a = get_arch(f"nextvit_{size}_224").builder()
        b = get_arch(f"nextvit_{size}_384").builder()
    assert paddle_style_shapes(a) == paddle_style_shapes(b)
    assert a.feature_info == b.feature_info


def test_feature_info_names_the_last_block_of_each_stage():
    with torch.device("meta"):
        infos = {
            s: get_arch(f"nextvit_{s}_224").builder().feature_info
            for s in ("small", "base", "large")
        }
    assert [f.module for f in infos["small"]] == [
        "features.2",
        "features.6",
        "features.16",
        "features.19",
    ]
    assert [f.module for f in infos["large"]][-1] == "features.39"
    for info in infos.values():
        assert [(f.channels, f.reduction) for f in info] == [
            (96, 4),
            (256, 8),
            (512, 16),
            (1024, 32),
        ]


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return get_arch("nextvit_small_224").builder().eval()


def test_forward_features_match_feature_info(small):
    x = torch.randn(2, 3, 64, 96)
    captured = {}
    modules = dict(small.named_modules())
    handles = [
        modules[fi.module].register_forward_hook(
            lambda m, i, o, key=fi.module: captured.__setitem__(key, o)
        )
        for fi in small.feature_info
    ]
    try:
        with torch.no_grad():
            feats = small.forward_stages(x)
            logits = small.forward_head(small.final_features(feats))
    finally:
        for h in handles:
            h.remove()
    assert logits.shape == (2, 1000)
    for f, fi in zip(feats, small.feature_info):
        assert f.shape == (2, fi.channels, 64 // fi.reduction, 96 // fi.reduction)
        assert torch.equal(captured[fi.module], f)


def test_attention_matches_the_explicit_formula():
    # E-MHSA with spatial reduction: keys/values from the token sequence average-pooled
    # 1-D by sr_ratio**2, then BatchNorm1d; softmax(q k^T * d^-1/2) v; projection.
    torch.manual_seed(0)
    att = E_MHSA(64, head_dim=32, sr_ratio=2).eval().double()
    att.norm.running_mean.normal_()
    att.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 36, 64, dtype=torch.float64)
    B, N, C, h = 2, 36, 64, 2
    q = att.q(x).reshape(B, N, h, 32).permute(0, 2, 1, 3)
    pooled = torch.stack([x[:, i : i + 4].mean(1) for i in range(0, N, 4)], 1)  # (B, 9, C)
    pooled = att.norm(pooled.transpose(1, 2)).transpose(1, 2)
    k = att.k(pooled).reshape(B, 9, h, 32).permute(0, 2, 3, 1)
    v = att.v(pooled).reshape(B, 9, h, 32).permute(0, 2, 1, 3)
    ref = att.proj(((q @ k) * 32**-0.5).softmax(-1).matmul(v).transpose(1, 2).reshape(B, N, C))
    with torch.no_grad():
        torch.testing.assert_close(att(x), ref.detach(), rtol=1e-12, atol=1e-12)


def test_too_small_input_gives_a_clear_error(small):
    with pytest.raises(ValueError, match="too small"):
        with torch.no_grad():
            small(torch.randn(1, 3, 16, 16))


def test_features_only_and_out_indices():
    model = ssld_zoo.load(
        "nextvit_small_384", pretrained=False, features_only=True, out_indices=(0, 2)
    )
    assert [f.reduction for f in model.feature_info] == [4, 16]
    assert not any(k.startswith(("model.proj_head", "model.norm.")) for k in model.state_dict())
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(96, 16, 16), (512, 4, 4)]


def test_num_classes_and_reset_classifier():
    model = ssld_zoo.load("nextvit_small_224", pretrained=False, num_classes=3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert model.get_classifier().out_features == 3
    assert "proj_head.0.weight" in model.state_dict()  # PaddleClas's key name is kept
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1024)


def test_train_mode_uses_drop_path_and_backpropagates():
    torch.manual_seed(0)
    model = get_arch("nextvit_small_224").builder(num_classes=4).train()
    assert model.features[-1].mlp_path_dropout.drop_prob == pytest.approx(0.1)
    assert model.features[0].mlp_path_dropout.drop_prob == 0.0
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- weight cards -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,top1,baseline",
    [
        ("nextvit_small_224", 84.72, 82.48),
        ("nextvit_base_224", 85.00, 83.24),
        ("nextvit_large_224", 85.36, 83.63),
        ("nextvit_small_384", 85.97, 84.01),
        ("nextvit_base_384", 86.34, 84.65),
        ("nextvit_large_384", 86.54, 84.92),
    ],
)
def test_cards(name, top1, baseline):
    ssld, plain = get_weights(f"{name}_ssld"), get_weights(name)
    assert ssld.top1 == top1 and ssld.baseline_top1 == baseline and plain.top1 == baseline
    base = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
    paddle_name = get_arch(name).paddle_name
    assert ssld.urls == (f"{base}{paddle_name}_ssld_pretrained.pdparams",)
    assert plain.urls == (f"{base}{paddle_name}_pretrained.pdparams",)
    res = int(name.rsplit("_", 1)[1])
    for card in (ssld, plain):
        t = card.transform
        assert (t.input_size, t.interpolation) == (res, "bicubic")
        assert t.resize == (256 if res == 224 else 384)
        assert "NextViT.md" in card.top1_source
    assert ssld.teacher is None  # not distilled with PaddleClas's SSLD (see the card)
