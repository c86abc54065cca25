"""The timm model API on every family, and timm's own data helpers on our models."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

import ssld_zoo
from ssld_zoo.registry import list_architectures, list_weights
from tests.models.helpers import SMALLEST_MODELS as NAMES
from tests.models.helpers import random_bn_model, sample_batch

# Families whose PaddleClas classes have head dropout (drop_rate) or stochastic depth.
WITH_DROP_RATE = [
    "ghostnet_x0_5",
    "mobilenetv3_small_x0_35",
    "pphgnet_tiny",
    "pphgnetv2_b0",
    "pplcnet_x0_25",
    "pplcnetv2_small",
]


@pytest.mark.parametrize("name", NAMES)
def test_widths_features_head_and_classifier(name):
    model, x = random_bn_model(name), sample_batch()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.ndim == 4 and feats.shape[1] == model.num_features
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, model.head_hidden_size)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        assert model.get_classifier().in_features == model.head_hidden_size
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, feats)
        assert [t.shape[1] for t in inter] == model.feature_info.channels()
        assert len(model.forward_intermediates(x, indices=2, intermediates_only=True)) == 2
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, model.head_hidden_size)
    model.reset_classifier(7)
    assert model.num_classes == 7
    with torch.no_grad():
        assert model(x).shape == (2, 7)


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_cfg_without_weights_names_real_modules(name):
    model = random_bn_model(name)
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["num_classes"] == 1000
    # Without weights, the eval transform of the default (SSLD) weights, as timm's cfg has.
    default = next(
        c for c in list_weights() if c.arch == name and (c.name in (name, f"{name}_ssld"))
    )
    tf = default.transform
    assert cfg["crop_pct"] == pytest.approx(tf.input_size / tf.resize)
    assert cfg["interpolation"] == tf.interpolation
    first = model.get_submodule(cfg["first_conv"])
    assert isinstance(first, nn.Conv2d) and first.in_channels == 3
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert model.weight_card is None


def test_timm_resolve_data_config_and_create_transform_take_our_models():
    import timm.data as timm_data  # a test dependency (pyproject [test])
    from PIL import Image

    model = random_bn_model("nextvit_small_224")
    config = timm_data.resolve_data_config(model=model)
    assert config["input_size"] == (3, 224, 224)
    assert config["interpolation"] == "bicubic" or config["interpolation"] == "bilinear"
    assert config["mean"] == pytest.approx((0.485, 0.456, 0.406))
    transform = timm_data.create_transform(**config)
    out = transform(Image.new("RGB", (300, 260), (120, 30, 200)))
    assert out.shape == (3, 224, 224)
    # timm's eval transform and ours agree on the same image.
    ours = ssld_zoo.transforms("resnet50_vd")(Image.new("RGB", (300, 260), (120, 30, 200)))
    torch.testing.assert_close(out, ours, atol=1e-5, rtol=0)


def test_feature_info_has_timm_accessors_and_int_out_indices_take_the_last_n():
    model = random_bn_model("resnet18_vd")
    info = model.feature_info
    assert info.channels() == [64, 128, 256, 512]
    assert info.reduction() == [4, 8, 16, 32]
    assert info.module_name(0) == "blocks.1"
    assert info.get_dicts()[3] == {"num_chs": 512, "reduction": 32, "module": "blocks.7"}
    assert info[1]["num_chs"] == 128
    pyramid = random_bn_model("resnet18_vd", features_only=True, out_indices=2)
    assert pyramid.out_indices == (2, 3)
    assert [t.shape[1] for t in pyramid(sample_batch())] == [256, 512]
    with pytest.raises(ValueError, match="out of range"):
        ssld_zoo.load("resnet18_vd", pretrained=False, features_only=True, out_indices=5)
    with pytest.raises(ValueError, match="num_classes"):
        ssld_zoo.load("resnet18_vd", pretrained=False, features_only=True, num_classes=10)


@pytest.mark.parametrize("name", NAMES)
def test_in_chans_builds_and_adapts_loaded_weights(name, tmp_path):
    grey = random_bn_model(name, in_chans=1)
    with torch.no_grad():
        assert grey(sample_batch()[:, :1]).shape == (2, 1000)
    src = random_bn_model(name)
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    one = ssld_zoo.load(name, weights=tmp_path / "w.safetensors", in_chans=1)
    six = ssld_zoo.load(name, weights=tmp_path / "w.safetensors", in_chans=6)
    g, rgb = sample_batch()[:, :1], sample_batch()
    with torch.no_grad():
        want_grey = src(g.expand(-1, 3, -1, -1))
        want_rgb = src(rgb)
        # A grey image through the summed filters = the same image as RGB through the RGB
        # ones; two stacked copies through the repeated, halved filters = the RGB image.
        for got, want in ((one(g), want_grey), (six(torch.cat([rgb, rgb], 1)), want_rgb)):
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3 * float(want.abs().max()))
    assert one.pretrained_cfg["input_size"][0] == 1


@pytest.mark.parametrize("name", WITH_DROP_RATE)
def test_drop_rate_sets_the_head_dropout(name):
    model = random_bn_model(name, drop_rate=0.5)
    assert [getattr(m, "p") for m in model.modules() if hasattr(m, "p")] == [0.5]


def test_drop_path_rate_and_a_wrong_keyword():
    model = random_bn_model("nextvit_small_224", drop_path_rate=0.3)
    assert max(m.drop_prob for m in model.modules() if hasattr(m, "drop_prob")) == pytest.approx(
        0.3
    )
    with pytest.raises(ValueError, match=r"resnet18_vd: .*drop_rate.*ssld_zoo/models/resnet_vd"):
        ssld_zoo.load("resnet18_vd", pretrained=False, drop_rate=0.1)


@pytest.mark.parametrize(
    "name",
    ["resnet18_vd", "hrnet_w18_c", "mobilenetv3_small_x0_35", "ghostnet_x0_5", "nextvit_small_224"],
)
def test_grad_checkpointing_gives_the_same_loss_and_gradients(name):
    def run(enable: bool):
        model = random_bn_model(name).train()
        model.set_grad_checkpointing(enable)
        torch.manual_seed(3)
        loss = model(sample_batch()).square().mean()
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in model.named_parameters()}

    loss_ref, grads_ref = run(False)
    loss_ck, grads_ck = run(True)
    torch.testing.assert_close(loss_ck, loss_ref)
    assert grads_ck.keys() == grads_ref.keys()
    for key in grads_ref:
        torch.testing.assert_close(grads_ck[key], grads_ref[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "name,interpolation,crop_pct,size",
    [
        ("pphgnet_tiny", "bicubic", 224 / 232, 224),
        ("pphgnetv2_b0", "bicubic", 224 / 232, 224),
        ("pphgnetv2_b4", "bicubic", 224 / 236, 224),
        ("nextvit_small_224", "bicubic", 224 / 256, 224),
        ("nextvit_small_384", "bicubic", 1.0, 384),
        ("resnet50_vd", "bilinear", 224 / 256, 224),
    ],
)
def test_pretrained_cfg_without_weights_is_the_default_weights_transform(
    name, interpolation, crop_pct, size
):
    """timm's pretrained_cfg of a model built without weights describes its default weights;
    PP-HGNet(V2) and Next-ViT are evaluated bicubic at 224 of 232/236 and 256 (384 at 384)."""
    import timm.data as timm_data

    with torch.device("meta"):
        model = ssld_zoo.load(name, pretrained=False)
    cfg = model.pretrained_cfg
    assert (cfg["interpolation"], cfg["input_size"]) == (interpolation, (3, size, size))
    assert cfg["crop_pct"] == pytest.approx(crop_pct)
    assert cfg["tag"] == "" and cfg["url"] == ""  # no weights loaded: none named
    resolved = timm_data.resolve_data_config(model=model)
    assert resolved["interpolation"] == interpolation
    assert resolved["crop_pct"] == pytest.approx(crop_pct)


def _layer_decay_groups(model: nn.Module) -> dict[float, set[str]]:
    from timm.optim import param_groups_layer_decay

    names = {id(p): n for n, p in model.named_parameters()}
    groups: dict[float, set[str]] = {}
    for g in param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.5):
        groups.setdefault(g["lr_scale"], set()).update(names[id(p)] for p in g["params"])
    return groups


@pytest.mark.parametrize("name", NAMES)
def test_timm_layer_decay_and_weight_decay_groups_apply(name):
    """timm's param_groups_layer_decay reads group_matcher(coarse=False): the stem gets the
    smallest lr scale, every block its own rising scale, the classifier 1.0;
    param_groups_weight_decay reads no_weight_decay() and skips 1-d tensors."""
    from timm.optim import param_groups_weight_decay

    with torch.device("meta"):
        model = ssld_zoo.load(name, pretrained=False)
    fine, coarse = model.group_matcher(), model.group_matcher(coarse=True)
    assert len(coarse["blocks"]) == 4 + (
        name
        in (
            "ghostnet_x0_5",
            "mobilenetv1_x0_25",
            "mobilenetv2_x0_25",
            "mobilenetv3_small_x0_35",
            "pplcnet_x0_25",
        )
    )
    assert len(fine["blocks"]) >= len(coarse["blocks"])
    groups = _layer_decay_groups(model)
    scales = sorted(groups)
    assert len(scales) == len(fine["blocks"]) + 1 + (fine["stem"] is not None)
    classifier = model.pretrained_cfg["classifier"]
    head = {f"{classifier}.{n}" for n, _ in model.get_classifier().named_parameters()}
    assert head <= groups[1.0]
    if fine["stem"] is not None:
        first = model.pretrained_cfg["first_conv"] + ".weight"
        assert first in groups[scales[0]]
    assert model.no_weight_decay() == set()
    wd = param_groups_weight_decay(model, weight_decay=0.05)
    decayed = {id(p) for g in wd if g["weight_decay"] > 0 for p in g["params"]}
    # (PP-LCNetV2's fused conv, unused by forward, does not train: timm leaves it out.)
    assert all((p.ndim > 1) == (id(p) in decayed) for p in model.parameters() if p.requires_grad)


def test_hrnet_groups_are_its_stem_stages_and_transitions():
    with torch.device("meta"):
        model = ssld_zoo.load("hrnet_w18_c", pretrained=False)
    coarse = model.group_matcher(coarse=True)
    import re

    stage_of = {
        n: next((o[0] for r, o in coarse["blocks"] if re.match(r, n)), None)
        for n, _ in model.named_parameters()
    }
    assert stage_of["layer1.0.conv1.conv.weight"] == 0
    assert stage_of["conv_tr1_2.conv.weight"] == 1 and stage_of["conv_tr3.conv.weight"] == 3
    assert re.match(coarse["stem"], "conv_layer1_1.conv.weight")
    assert stage_of["fc.weight"] is None  # the head: timm's last group


@pytest.mark.slow
def test_timm_param_groups_work_on_every_architecture():
    from timm.optim import param_groups_layer_decay

    for name in list_architectures():
        with torch.device("meta"):
            model = ssld_zoo.load(name, pretrained=False)
        groups = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.75)
        n_params = sum(len(g["params"]) for g in groups)
        assert n_params == sum(p.requires_grad for p in model.parameters()), name
        assert len({g["lr_scale"] for g in groups}) == len(model.group_matcher()["blocks"]) + 2 - (
            model.group_matcher()["stem"] is None
        ), name
