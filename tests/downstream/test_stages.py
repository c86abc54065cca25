"""Stage structure, dilation and per-stage parameter groups of zoo backbones (plain PyTorch)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import ssld_zoo
from ssld_zoo.adapters.stages import dilate_, stage_layout
from ssld_zoo.adapters.transfer import default_stage_lr_mult, stage_param_groups


def _net(name: str) -> nn.Module:
    return ssld_zoo.load(name, pretrained=False, features_only=True).model


def test_resnet50_vd_stages_are_paddle_block_ranges():
    layout = stage_layout(_net("resnet50_vd"))
    assert {n.split(".")[0] for n in layout.stem} == {"stem", "max_pool"}
    # ResNet50's 3/4/6/3 blocks, named flat as in PaddleClas.
    blocks = [sorted({int(n.split(".")[1]) for n in s}) for s in layout.stages]
    assert blocks == [[0, 1, 2], [3, 4, 5, 6], list(range(7, 13)), [13, 14, 15]]
    assert layout.group_of("blocks.7.conv1.conv.weight") == "stages.2"
    assert layout.group_of("stem.0.conv.weight") == "stem"


def test_flat_named_family_stage0_starts_at_first_sibling():
    # Res2Net_vd names its blocks bb_<stage>_<i>: stage 0 is bb_0_0..bb_0_2, not the stem.
    layout = stage_layout(_net("res2net50_vd_26w_4s"))
    assert layout.stages[0][0].startswith("bb_0_0.")
    assert not any(n.startswith("bb_") for n in layout.stem)


def test_parallel_branch_family_is_refused_clearly():
    with pytest.raises(ValueError, match="hrnet|HRNet|not a module"):
        stage_layout(_net("hrnet_w18_c"))


@pytest.mark.parametrize("os_, expect", [(8, [4, 8, 8, 8]), (16, [4, 8, 16, 16])])
def test_dilation_keeps_resolution_and_parameters(os_, expect):
    net = _net("resnet50_vd")
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    info = dilate_(net, os_)
    assert [f.reduction for f in info] == expect
    assert {k: v.shape for k, v in net.state_dict().items()} == shapes  # weights still load
    feats = net.eval().forward_stages(torch.zeros(1, 3, 64, 64))
    assert [64 // f.shape[-1] for f in feats] == expect
    # PaddleSeg's dilated ResNet_vd: stage 3 at dilation 4 (os 8) / 2 (os 16), no vd pooling.
    conv = net.blocks[13].conv1.conv
    assert conv.dilation == ((4, 4) if os_ == 8 else (2, 2)) and conv.stride == (1, 1)
    assert isinstance(net.blocks[13].short.avg_pool, nn.Identity)


def test_dilation_rejects_a_stride_the_backbone_lacks():
    with pytest.raises(ValueError, match=r"output_stride 12 .*\[4, 8, 16, 32\]"):
        dilate_(_net("resnet50_vd"), 12)


def test_stage_param_groups_follow_the_published_multipliers():
    model = ssld_zoo.load("resnet18_vd", pretrained=False, num_classes=10)
    mult = default_stage_lr_mult("resnet18_vd", 4)
    assert mult == (0.1, 0.1, 0.2, 0.2, 0.3)
    groups = stage_param_groups(model, lr=1.0, weight_decay=1e-4, stage_lr_mult=mult)
    by_name = {id(p): g for g in groups for p in g["params"]}
    assert by_name[id(model.fc.weight)]["lr"] == 1.0
    assert by_name[id(model.stem[0].conv.weight)]["lr"] == pytest.approx(0.1)
    assert by_name[id(model.blocks[7].conv0.conv.weight)]["lr"] == pytest.approx(0.3)
    assert by_name[id(model.blocks[7].conv0.bn.weight)]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="needs 5 values"):
        stage_param_groups(model, 1.0, 0.0, (0.1, 0.2))
