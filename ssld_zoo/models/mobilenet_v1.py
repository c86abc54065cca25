"""MobileNetV1 (Howard et al. 2017), as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/legendary_models/mobilenet_v1.py``: a 3x3 stride-2 conv-BN-ReLU stem and
thirteen depthwise-separable blocks (3x3 depthwise conv-BN-ReLU, 1x1 pointwise conv-BN-ReLU),
global average pool, fc. Channels are ``int(c * scale)``; no dropout. Module names equal
PaddleClas's (``conv``, ``blocks.N.depthwise_conv``, ``blocks.N.pointwise_conv``, ``fc``).
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from ssld_zoo.models._base import PoolLinearBackbone
from ssld_zoo.models.layers import ConvBNAct
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["MobileNetV1"]

# (in, depthwise width, pointwise width, stride) per block, before scaling.
_BLOCKS = (
    (32, 32, 64, 1),
    (64, 64, 128, 2),
    (128, 128, 128, 1),
    (128, 128, 256, 2),
    (256, 256, 256, 1),
    (256, 256, 512, 2),
    (512, 512, 512, 1),
    (512, 512, 512, 1),
    (512, 512, 512, 1),
    (512, 512, 512, 1),
    (512, 512, 512, 1),
    (512, 512, 1024, 2),
    (1024, 1024, 1024, 1),
)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU."""

    def __init__(self, in_ch: int, dw_ch: int, out_ch: int, stride: int):
        super().__init__()
        # PaddleClas's groups = int(num_groups * scale) equals the depthwise width.
        self.depthwise_conv = ConvBNAct(in_ch, dw_ch, 3, stride, groups=dw_ch, act=True)
        self.pointwise_conv = ConvBNAct(dw_ch, out_ch, 1, 1, act=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class MobileNetV1(PoolLinearBackbone):
    """MobileNetV1 at width ``scale``.

    ``forward_stages`` returns five stage outputs, at strides 2, 4, 8, 16 and 32 (the last
    block of each resolution: ``blocks.0``, ``blocks.2``, ``blocks.4``, ``blocks.10``,
    ``blocks.12``), the stages timm's ``mobilenetv1_100`` exposes.
    """

    head_names = ("fc",)

    def __init__(self, scale: float = 1.0, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        self.scale = scale
        self.num_classes = num_classes
        self.conv = ConvBNAct(in_chans, int(32 * scale), 3, 2, act=True)
        blocks, self.feature_info, reduction = [], [], 2
        for i, (cin, dw, out, stride) in enumerate(_BLOCKS):
            blocks.append(
                DepthwiseSeparable(int(cin * scale), int(dw * scale), int(out * scale), stride)
            )
            reduction *= stride
            next_stride = _BLOCKS[i + 1][3] if i + 1 < len(_BLOCKS) else 2
            if next_stride == 2:  # last block at this resolution
                self.feature_info.append(FeatureInfo(int(out * scale), reduction, f"blocks.{i}"))
        self.blocks = nn.Sequential(*blocks)
        self._stage_ends = [int(f.module.split(".")[1]) for f in self.feature_info]
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        width = int(1024 * scale)
        self.num_features = self.head_hidden_size = width
        self.fc = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self._run_blocks(self.conv(x))


@register_model("MobileNetV1_x0_25")
def mobilenetv1_x0_25(**kwargs) -> MobileNetV1:
    return MobileNetV1(0.25, **kwargs)


@register_model("MobileNetV1_x0_5")
def mobilenetv1_x0_5(**kwargs) -> MobileNetV1:
    return MobileNetV1(0.5, **kwargs)


@register_model("MobileNetV1_x0_75")
def mobilenetv1_x0_75(**kwargs) -> MobileNetV1:
    return MobileNetV1(0.75, **kwargs)


@register_model("MobileNetV1")
def mobilenetv1(**kwargs) -> MobileNetV1:
    return MobileNetV1(1.0, **kwargs)


_LEGENDARY = PADDLE_BASE + "legendary_models/"
_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/MobileNetV1.md"
# MobileNet-family SSLD students were distilled from ResNet50_vd_ssld (SSLD_DOC).
_TEACHER = "resnet50_vd_ssld"

register_weights(
    WeightCard(
        "mobilenetv1_x0_25",
        "mobilenetv1_x0_25",
        (_LEGENDARY + "MobileNetV1_x0_25_pretrained.pdparams",),
        top1=51.4,
        top1_source=_DOC,
    ),
    WeightCard(
        "mobilenetv1_x0_5",
        "mobilenetv1_x0_5",
        (_LEGENDARY + "MobileNetV1_x0_5_pretrained.pdparams",),
        top1=63.5,
        top1_source=_DOC,
    ),
    WeightCard(
        "mobilenetv1_x0_75",
        "mobilenetv1_x0_75",
        (_LEGENDARY + "MobileNetV1_x0_75_pretrained.pdparams",),
        top1=68.8,
        top1_source=_DOC,
    ),
    WeightCard(
        "mobilenetv1",
        "mobilenetv1",
        (_LEGENDARY + "MobileNetV1_pretrained.pdparams",),
        top1=71.0,
        top1_source=_DOC,
    ),
    WeightCard(
        "mobilenetv1_ssld",
        "mobilenetv1",
        (_LEGENDARY + "MobileNetV1_ssld_pretrained.pdparams",),
        top1=77.9,
        baseline_top1=71.0,
        top1_source=SSLD_DOC,
        teacher=_TEACHER,
    ),
)
