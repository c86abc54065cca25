"""SSLDBackbone and SSLDStageLrConstructor (needs mmengine only)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import ssld_zoo


def _build(**kw):
    from mmengine.registry import MODELS

    return MODELS.build(dict(type="SSLDBackbone", **kw))


def test_stage_outputs_equal_zoo_features_only(mmengine_only):
    b = _build(model="resnet50_vd", weights=None, out_indices=(1, 2, 3))
    ref = ssld_zoo.load("resnet50_vd", pretrained=False, features_only=True, out_indices=(1, 2, 3))
    ref.load_state_dict(b.body.state_dict())
    x = torch.randn(2, 3, 96, 96)
    got, want = b.eval()(x), ref.eval()(x)
    assert isinstance(got, tuple) and len(got) == 3
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    assert b.out_channels == [512, 1024, 2048]


def test_weights_file_is_loaded_by_init_weights(mmengine_only, tmp_path):
    src = ssld_zoo.load("resnet18_vd", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    b = _build(model="resnet18_vd", weights=str(tmp_path / "r18.pth"))
    assert not torch.equal(b.body.model.stem[0].conv.weight, src.stem[0].conv.weight)
    b.init_weights()
    torch.testing.assert_close(
        b.body.model.blocks[5].conv1.conv.weight, src.blocks[5].conv1.conv.weight
    )


def test_frozen_stages_get_no_gradient(mmengine_only):
    b = _build(model="resnet18_vd", weights=None, frozen_stages=2).train()
    sum(o.mean() for o in b(torch.randn(2, 3, 64, 64))).backward()
    for name, p in b.named_parameters():
        stage = b.stage_of(name)
        if stage in ("stem", "stages.0", "stages.1"):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name
    # Frozen BatchNorms stay in eval mode even after .train().
    assert not b.body.model.stem[0].bn.training and b.body.model.blocks[6].conv0.bn.training


def test_norm_eval_keeps_batchnorm_statistics(mmengine_only):
    b = _build(model="resnet18_vd", weights=None, norm_eval=True).train()
    before = {k: v.clone() for k, v in b.state_dict().items() if "running" in k}
    b(torch.randn(2, 3, 64, 64) * 5 + 3)
    after = b.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
    c = _build(model="resnet18_vd", weights=None, norm_eval=False).train()
    c(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert not torch.equal(c.body.model.stem[0].bn.running_mean, torch.zeros(32))


def test_output_stride_8_for_segmentation(mmengine_only):
    b = _build(model="resnet50_vd", weights=None, output_stride=8)
    outs = b.eval()(torch.zeros(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [16, 8, 8, 8]
    assert [f.reduction for f in b.feature_info] == [4, 8, 8, 8]


def test_unknown_name_lists_close_names(mmengine_only):
    with pytest.raises(ValueError, match=r"unknown model 'resnet50_vdd'.*resnet50_vd"):
        _build(model="resnet50_vdd", weights=None)


def test_out_of_range_out_indices_lists_stages(mmengine_only):
    with pytest.raises(ValueError, match=r"out_indices \[0, 7\].*4 stages: 0: blocks.2"):
        _build(model="resnet50_vd", weights=None, out_indices=(0, 7))


def test_weights_errors_name_the_choices(mmengine_only):
    with pytest.raises(ValueError, match=r"no SSLD weights.*resnet18_vd"):
        _build(model="resnet18_vd")  # default weights='ssld'
    with pytest.raises(ValueError, match=r"did you mean: resnet50_vd_ssld"):
        _build(model="resnet50_vd", weights="resnet50_vd_sld")


def test_default_weights_are_the_ssld_ones(mmengine_only):
    assert _build(model="resnet50_vd").weights == "resnet50_vd_ssld"
    assert (
        _build(model="mobilenetv3_large_x1_0", out_indices=(2, 3, 4)).weights
        == "mobilenetv3_large_x1_0_ssld"
    )
    assert _build(model="resnet50_vd", weights="resnet50_vd").weights == "resnet50_vd"


def test_pretrained_init_cfg_replaces_zoo_weights(mmengine_only, tmp_path):
    src = ssld_zoo.load("resnet18_vd", pretrained=False, features_only=True)
    path = tmp_path / "bb.pth"
    torch.save({f"body.{k}": v for k, v in src.state_dict().items()}, path)
    # weights='resnet18_vd' would need a download; the Pretrained init_cfg wins instead.
    b = _build(
        model="resnet18_vd",
        weights="resnet18_vd",
        init_cfg=dict(type="Pretrained", checkpoint=str(path)),
    )
    b.init_weights()
    torch.testing.assert_close(
        b.body.model.blocks[3].conv0.conv.weight, src.model.blocks[3].conv0.conv.weight
    )


def test_stage_lr_constructor_maps_stage_names(mmengine_only):
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

    model = nn.Module()
    model.backbone = _build(model="resnet18_vd", weights=None, frozen_stages=1)
    model.neck = nn.Conv2d(512, 8, 1)
    keys = {
        "backbone.stem": 0.05,
        "backbone.stages.0": 0.05,
        "backbone.stages.1": 0.05,
        "backbone.stages.2": 0.1,
        "backbone.stages.3": 0.15,
    }
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type="SSLDStageLrConstructor",
            optim_wrapper_cfg=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.02)),
            paramwise_cfg=dict(custom_keys={k: dict(lr_mult=v) for k, v in keys.items()}),
        )
    )
    groups = ctor(model).optimizer.param_groups
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    net = model.backbone.body.model
    assert lr_of[id(net.blocks[2].conv0.conv.weight)] == pytest.approx(0.001)  # stage 1
    assert lr_of[id(net.blocks[4].conv1.bn.weight)] == pytest.approx(0.002)  # stage 2
    assert lr_of[id(net.blocks[7].conv0.conv.weight)] == pytest.approx(0.003)  # stage 3
    assert lr_of[id(model.neck.weight)] == pytest.approx(0.02)
    assert id(net.stem[0].conv.weight) not in lr_of  # frozen: not optimised
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(lr_of) == len(trainable)
