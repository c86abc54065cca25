"""ResNet_vd (He et al. 2019, "Bag of Tricks", variant D), as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/legendary_models/resnet.py``. What differs from torchvision's ResNet:
a stem of three 3x3 convs, stride on the 3x3 conv of the bottleneck, an average-pool before the
1x1 projection of strided shortcuts, and a projection shortcut on the first block of *every*
stage (stage 1 too, also for the basic-block depths). Module names equal PaddleClas's.
"""

from __future__ import annotations

import re
from typing import List

import torch
import torch.nn as nn

from ssld_zoo.models._base import PoolLinearBackbone
from ssld_zoo.models.layers import ConvBNAct, vd_avg_pool
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["ResNetVd"]

# depth -> (block type, blocks per stage)
_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 12, 48, 3)),
}


def _shortcut(in_ch: int, out_ch: int, stride: int, first_stage: bool) -> ConvBNAct:
    # Stage 1's projection has no pooling (nothing to downsample); later ones pool then 1x1.
    if first_stage:
        return ConvBNAct(in_ch, out_ch, 1, stride)
    return ConvBNAct(in_ch, out_ch, 1, pre=("avg_pool", vd_avg_pool(stride)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int, project: bool, first_stage: bool):
        super().__init__()
        self.conv0 = ConvBNAct(in_ch, width, 3, stride, act=True)
        self.conv1 = ConvBNAct(width, width, 3)
        self.short = _shortcut(in_ch, width, stride, first_stage) if project else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = x if self.short is None else self.short(x)
        return self.relu(self.conv1(self.conv0(x)) + short)


class BottleneckBlock(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, project: bool, first_stage: bool):
        super().__init__()
        self.conv0 = ConvBNAct(in_ch, width, 1, act=True)
        self.conv1 = ConvBNAct(width, width, 3, stride, act=True)
        self.conv2 = ConvBNAct(width, width * 4, 1)
        self.short = _shortcut(in_ch, width * 4, stride, first_stage) if project else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = x if self.short is None else self.short(x)
        return self.relu(self.conv2(self.conv1(self.conv0(x))) + short)


class ResNetVd(PoolLinearBackbone):
    """ResNet_vd. ``forward_stages`` returns the four stage outputs (strides 4, 8, 16, 32)."""

    head_names = ("fc",)

    def __init__(self, depth: int = 50, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"ResNet_vd depth {depth} is not one of {sorted(_DEPTHS)}")
        kind, counts = _DEPTHS[depth]
        block = BasicBlock if kind == "basic" else BottleneckBlock
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            ConvBNAct(in_chans, 32, 3, 2, act=True),
            ConvBNAct(32, 32, 3, 1, act=True),
            ConvBNAct(32, 64, 3, 1, act=True),
        )
        self.max_pool = nn.MaxPool2d(3, 2, 1)
        blocks, self.feature_info, in_ch, reduction = [], [], 64, 4
        for stage, (n, width) in enumerate(zip(counts, (64, 128, 256, 512))):
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                blocks.append(
                    block(in_ch, width, stride, project=(i == 0), first_stage=(stage == 0))
                )
                in_ch = width * block.expansion
            reduction *= 1 if stage == 0 else 2
            self.feature_info.append(FeatureInfo(in_ch, reduction, f"blocks.{len(blocks) - 1}"))
        # Flat, as PaddleClas names them (blocks.0 ... blocks.N); stages are index ranges.
        self.blocks = nn.Sequential(*blocks)
        self._stage_ends = [int(f.module.split(".")[1]) for f in self.feature_info]
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.head_hidden_size = in_ch
        self.fc = nn.Linear(in_ch, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self._run_blocks(self.max_pool(self.stem(x)))


_LEGACY_BLOCK = re.compile(r"bb_(\d+)_(\d+)\.")


def checkpoint_filter_fn(state: dict) -> dict:
    """Map PaddleClas 2.0/2.1 ResNet_vd names onto 2.6's (= ours); other files pass unchanged.

    The old model (``ppcls/arch/backbone/model_zoo/resnet_vd.py``, the SSLD docs' old links) is
    the same network under other names: stem ``conv1_{1,2,3}``, blocks ``bb_<stage>_<i>``,
    ``_conv``/``_batch_norm`` inside each conv, head ``out``.
    """
    if not any(k.startswith(("conv1_1.", "bb_0_0.")) for k in state):
        return state
    per_stage: dict[int, int] = {}
    for key in state:
        m = _LEGACY_BLOCK.match(key)
        if m:
            stage, i = int(m.group(1)), int(m.group(2))
            per_stage[stage] = max(per_stage.get(stage, 0), i + 1)
    first = {s: sum(per_stage[t] for t in sorted(per_stage) if t < s) for s in per_stage}
    out = {}
    for key, value in state.items():
        new = re.sub(r"^conv1_(\d)\.", lambda m: f"stem.{int(m.group(1)) - 1}.", key)
        new = _LEGACY_BLOCK.sub(
            lambda m: f"blocks.{first[int(m.group(1))] + int(m.group(2))}.", new, count=1
        )
        new = new.replace("._conv.", ".conv.").replace("._batch_norm.", ".bn.")
        new = re.sub(r"^out\.", "fc.", new)
        out[new] = value
    return out


@register_model("ResNet18_vd")
def resnet18_vd(**kwargs) -> ResNetVd:
    return ResNetVd(18, **kwargs)


@register_model("ResNet34_vd")
def resnet34_vd(**kwargs) -> ResNetVd:
    return ResNetVd(34, **kwargs)


@register_model("ResNet50_vd")
def resnet50_vd(**kwargs) -> ResNetVd:
    return ResNetVd(50, **kwargs)


@register_model("ResNet101_vd")
def resnet101_vd(**kwargs) -> ResNetVd:
    return ResNetVd(101, **kwargs)


@register_model("ResNet152_vd")
def resnet152_vd(**kwargs) -> ResNetVd:
    return ResNetVd(152, **kwargs)


@register_model("ResNet200_vd")
def resnet200_vd(**kwargs) -> ResNetVd:
    return ResNetVd(200, **kwargs)


_LEGENDARY = PADDLE_BASE + "legendary_models/"
_RESNET_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/ResNet.md"
_WSL_TEACHER = "resnext101_32x16d_wsl"

register_weights(
    WeightCard(
        "resnet18_vd",
        "resnet18_vd",
        (_LEGENDARY + "ResNet18_vd_pretrained.pdparams",),
        top1=72.3,
        top1_source=_RESNET_DOC,
    ),
    WeightCard(
        "resnet34_vd",
        "resnet34_vd",
        (_LEGENDARY + "ResNet34_vd_pretrained.pdparams",),
        top1=76.0,
        top1_source=SSLD_DOC,
    ),
    WeightCard(
        "resnet34_vd_ssld",
        "resnet34_vd",
        (_LEGENDARY + "ResNet34_vd_ssld_pretrained.pdparams",),
        top1=79.7,
        baseline_top1=76.0,
        top1_source=SSLD_DOC,
        teacher=_WSL_TEACHER,
    ),
    WeightCard(
        "resnet50_vd",
        "resnet50_vd",
        (_LEGENDARY + "ResNet50_vd_pretrained.pdparams",),
        top1=79.1,
        top1_source=SSLD_DOC,
    ),
    WeightCard(
        "resnet50_vd_ssld",
        "resnet50_vd",
        (_LEGENDARY + "ResNet50_vd_ssld_pretrained.pdparams",),
        top1=83.0,
        baseline_top1=79.1,
        top1_source=SSLD_DOC,
        teacher=_WSL_TEACHER,
    ),
    WeightCard(
        "resnet101_vd",
        "resnet101_vd",
        (_LEGENDARY + "ResNet101_vd_pretrained.pdparams",),
        top1=80.2,
        top1_source=SSLD_DOC,
    ),
    WeightCard(
        "resnet101_vd_ssld",
        "resnet101_vd",
        (_LEGENDARY + "ResNet101_vd_ssld_pretrained.pdparams",),
        top1=83.7,
        baseline_top1=80.2,
        top1_source=SSLD_DOC,
        teacher=_WSL_TEACHER,
    ),
    WeightCard(
        "resnet152_vd",
        "resnet152_vd",
        (_LEGENDARY + "ResNet152_vd_pretrained.pdparams",),
        top1=80.6,
        top1_source=_RESNET_DOC,
    ),
    WeightCard(
        "resnet200_vd",
        "resnet200_vd",
        (_LEGENDARY + "ResNet200_vd_pretrained.pdparams",),
        top1=80.9,
        top1_source=_RESNET_DOC,
    ),
)
