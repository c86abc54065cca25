"""MobileNetV3 large and small (Howard et al. 2019), as PaddleClas 2.6.0 builds them.

``ppcls/arch/backbone/legendary_models/mobilenet_v3.py``. What differs from torchvision's and
timm's MobileNetV3 (each changes the numbers):

* every block has an expand conv, also when the expansion equals the input width;
* the squeeze-excite reduces to ``mid // 4`` (plain floor, not made divisible), its convs have
  biases, and its gate is ``clip(0.2 * x + 0.5, 0, 1)`` (Paddle's hardsigmoid with slope 0.2),
  not torch's ``x / 6 + 0.5``;
* channels are ``make_divisible(c * scale, 8)`` with Paddle's rounding;
* the head is 1x1 conv-BN-hardswish (960 / 576 x scale), average pool, 1x1 conv to 1280 (no BN,
  no bias), hardswish, dropout of Paddle's ``downscale_in_infer`` kind (identity in training,
  x0.8 at inference), fc.

Module names equal PaddleClas's.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from ssld_zoo.models._base import Backbone
from ssld_zoo.models.layers import ConvBNAct, DownscaleInInferDropout, float32, make_divisible
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["MobileNetV3", "DownscaleInInferDropout", "make_divisible"]

# kernel, expansion width, out width, squeeze-excite, activation, stride
_LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)
_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
# config, width of the last conv before pooling ("class_squeeze")
_CONFIGS = {"large": (_LARGE, 960), "small": (_SMALL, 576)}
_STEM = 16
_LAST_CONV = 1280


class Hardsigmoid(nn.Module):
    """Paddle's hardsigmoid with a slope: ``clip(slope * x + offset, 0, 1)``.

    With PaddleClas's slope 0.2 this is *not* ``torch.nn.Hardsigmoid`` (slope 1/6)."""

    def __init__(self, slope: float = 0.2, offset: float = 0.5):
        super().__init__()
        self.slope = slope
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.slope + self.offset, 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"slope={self.slope}, offset={self.offset}"


class SEModule(nn.Module):
    """Squeeze-excite: pool -> 1x1 conv (C -> C // 4) -> ReLU -> 1x1 conv -> gate -> scale."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)
        self.hardsigmoid = Hardsigmoid(float32(0.2), 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))
        return x * w


class ResidualUnit(nn.Module):
    """expand 1x1 -> depthwise kxk -> [SE] -> linear 1x1, [+ input when shapes allow]."""

    def __init__(
        self, in_ch: int, mid_ch: int, out_ch: int, kernel: int, stride: int, use_se: bool, act: str
    ):
        super().__init__()
        self.if_shortcut = stride == 1 and in_ch == out_ch
        self.expand_conv = ConvBNAct(in_ch, mid_ch, 1, act=act)
        self.bottleneck_conv = ConvBNAct(mid_ch, mid_ch, kernel, stride, groups=mid_ch, act=act)
        self.mid_se = SEModule(mid_ch) if use_se else None
        self.linear_conv = ConvBNAct(mid_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.mid_se is not None:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.if_shortcut else y


class MobileNetV3(Backbone):
    """MobileNetV3 ``"large"`` or ``"small"`` at width ``scale``.

    ``forward_stages`` returns five stage outputs at strides 2, 4, 8, 16 and 32: the last
    module of each resolution, where the stride-32 one is ``last_second_conv`` (960 / 576
    channels x scale), as in timm's and torchvision's MobileNetV3 feature extractors.
    large: ``blocks.0``, ``blocks.2``, ``blocks.5``, ``blocks.11``, ``last_second_conv``;
    small: ``conv``, ``blocks.0``, ``blocks.2``, ``blocks.7``, ``last_second_conv``.
    """

    head_names = ("last_conv", "fc")

    def __init__(
        self,
        config: str = "large",
        scale: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = 0.2,
    ):
        super().__init__()
        if config not in _CONFIGS:
            raise ValueError(f"MobileNetV3 config {config!r} is not one of {sorted(_CONFIGS)}")
        cfg, squeeze = _CONFIGS[config]
        self.config, self.scale, self.num_classes = config, scale, num_classes
        in_ch = make_divisible(_STEM * scale)
        self.conv = ConvBNAct(in_chans, in_ch, 3, 2, act="hardswish")
        # Candidate feature points in execution order: (module, channels, reduction).
        points = [("conv", in_ch, 2)]
        blocks, reduction = [], 2
        for i, (k, exp, c, se, act, s) in enumerate(cfg):
            out_ch = make_divisible(scale * c)
            blocks.append(ResidualUnit(in_ch, make_divisible(scale * exp), out_ch, k, s, se, act))
            reduction *= s
            points.append((f"blocks.{i}", out_ch, reduction))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        squeeze_ch = make_divisible(scale * squeeze)
        self.last_second_conv = ConvBNAct(in_ch, squeeze_ch, 1, act="hardswish")
        points.append(("last_second_conv", squeeze_ch, reduction))
        # A stage ends where the next point is at a coarser resolution (or there is none).
        self.feature_info = [
            FeatureInfo(ch, red, name)
            for j, (name, ch, red) in enumerate(points)
            if j + 1 == len(points) or points[j + 1][2] != red
        ]
        ends = [f.module for f in self.feature_info]
        self._stem_is_stage = "conv" in ends
        self._block_ends = [i for i in range(len(blocks)) if f"blocks.{i}" in ends]
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = squeeze_ch
        self.head_hidden_size = _LAST_CONV
        self.last_conv = nn.Conv2d(squeeze_ch, _LAST_CONV, 1, bias=False)
        self.hardswish = nn.Hardswish()
        self.dropout = DownscaleInInferDropout(drop_rate) if drop_rate else nn.Identity()
        self.fc = nn.Linear(_LAST_CONV, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs: List[torch.Tensor] = []
        x = self.conv(x)
        if self._stem_is_stage:
            outs.append(x)
        if self.blocks is not None:  # None once pruned after the stem
            for i, blk in enumerate(self.blocks):
                x = blk(x)
                if i in self._block_ends:
                    outs.append(x)
        if self.last_second_conv is not None:
            outs.append(self.last_second_conv(x))
        return outs

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.hardswish(self.last_conv(self.avg_pool(x)))
        x = torch.flatten(self.dropout(x), 1)
        return x if pre_logits else self.fc(x)


@register_model("MobileNetV3_large_x0_35")
def mobilenetv3_large_x0_35(**kwargs) -> MobileNetV3:
    return MobileNetV3("large", 0.35, **kwargs)


@register_model("MobileNetV3_large_x0_5")
def mobilenetv3_large_x0_5(**kwargs) -> MobileNetV3:
    return MobileNetV3("large", 0.5, **kwargs)


@register_model("MobileNetV3_large_x0_75")
def mobilenetv3_large_x0_75(**kwargs) -> MobileNetV3:
    return MobileNetV3("large", 0.75, **kwargs)


@register_model("MobileNetV3_large_x1_0")
def mobilenetv3_large_x1_0(**kwargs) -> MobileNetV3:
    return MobileNetV3("large", 1.0, **kwargs)


@register_model("MobileNetV3_large_x1_25")
def mobilenetv3_large_x1_25(**kwargs) -> MobileNetV3:
    return MobileNetV3("large", 1.25, **kwargs)


@register_model("MobileNetV3_small_x0_35")
def mobilenetv3_small_x0_35(**kwargs) -> MobileNetV3:
    return MobileNetV3("small", 0.35, **kwargs)


@register_model("MobileNetV3_small_x0_5")
def mobilenetv3_small_x0_5(**kwargs) -> MobileNetV3:
    return MobileNetV3("small", 0.5, **kwargs)


@register_model("MobileNetV3_small_x0_75")
def mobilenetv3_small_x0_75(**kwargs) -> MobileNetV3:
    return MobileNetV3("small", 0.75, **kwargs)


@register_model("MobileNetV3_small_x1_0")
def mobilenetv3_small_x1_0(**kwargs) -> MobileNetV3:
    return MobileNetV3("small", 1.0, **kwargs)


@register_model("MobileNetV3_small_x1_25")
def mobilenetv3_small_x1_25(**kwargs) -> MobileNetV3:
    return MobileNetV3("small", 1.25, **kwargs)


_LEGENDARY = PADDLE_BASE + "legendary_models/"
_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/MobileNetV3.md"
# MobileNet-family SSLD students were distilled from ResNet50_vd_ssld (SSLD_DOC).
_TEACHER = "resnet50_vd_ssld"

# zoo name -> published top-1 of PaddleClas's baseline weights (_DOC, table 1.2)
_BASELINES = {
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
# zoo name -> published top-1 of the SSLD weights (SSLD_DOC)
_SSLD = {
    "mobilenetv3_large_x1_0": 79.0,
    "mobilenetv3_small_x1_0": 71.3,
    "mobilenetv3_small_x0_35": 55.6,
}


def _paddle_name(zoo_name: str) -> str:
    # mobilenetv3_large_x1_0 -> MobileNetV3_large_x1_0
    return "MobileNetV3" + zoo_name[len("mobilenetv3") :]


register_weights(
    *(
        WeightCard(
            name,
            name,
            (_LEGENDARY + f"{_paddle_name(name)}_pretrained.pdparams",),
            top1=top1,
            top1_source=_DOC,
        )
        for name, top1 in _BASELINES.items()
    )
)
register_weights(
    *(
        WeightCard(
            f"{name}_ssld",
            name,
            (_LEGENDARY + f"{_paddle_name(name)}_ssld_pretrained.pdparams",),
            top1=top1,
            baseline_top1=_BASELINES[name],
            top1_source=SSLD_DOC,
            teacher=_TEACHER,
        )
        for name, top1 in _SSLD.items()
    )
)
