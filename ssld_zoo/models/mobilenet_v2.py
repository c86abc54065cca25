"""MobileNetV2 (Sandler et al. 2018), as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/model_zoo/mobilenet_v2.py``, an older-style PaddleClas model whose
sub-modules carry fixed names, mirrored here so that ``.pdparams`` keys map 1:1:
``conv1`` (stem), ``conv2`` ... ``conv8`` (one per bottleneck setting, each holding
``_first_block`` and then ``conv<i>_2``, ``conv<i>_3``, ...), ``conv9`` (1x1 to 1280), ``out`` (fc).
Every conv is followed by BN and, except the linear projection, ReLU6. Channels are
``int(c * scale)``; the last conv keeps 1280 channels unless ``scale > 1``. No dropout.
"""

from __future__ import annotations

from functools import partial
from typing import List

import torch
import torch.nn as nn

from ssld_zoo.models._base import Backbone, FlatBlocks
from ssld_zoo.models.layers import MODEL_ZOO, ConvBNAct
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["MobileNetV2"]

# conv (no bias) -> BN -> [ReLU6], keys _conv/_batch_norm.
_conv_bn = partial(ConvBNAct, names=MODEL_ZOO)

# (expansion t, channels c, repeats n, stride s) of stages conv2 ... conv8.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidualUnit(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, [+ input]."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int, shortcut: bool):
        super().__init__()
        mid = int(round(in_ch * expansion))
        self._expand_conv = _conv_bn(in_ch, mid, 1, act="relu6")
        self._bottleneck_conv = _conv_bn(mid, mid, 3, stride, groups=mid, act="relu6")
        self._linear_conv = _conv_bn(mid, out_ch, 1)
        # PaddleClas adds the input on every block but the first of a stage (never strided,
        # and in == out there), decided by position rather than by shape.
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._linear_conv(self._bottleneck_conv(self._expand_conv(x)))
        return x + y if self.shortcut else y


class InvresiBlocks(FlatBlocks):
    """One stage: ``_first_block`` (may stride), then ``<name>_2`` ... ``<name>_<n>``."""

    def __init__(
        self, in_ch: int, expansion: int, out_ch: int, repeats: int, stride: int, name: str
    ):
        super().__init__()
        self._first_block = InvertedResidualUnit(in_ch, out_ch, stride, expansion, shortcut=False)
        self._rest = []
        for i in range(2, repeats + 1):
            self.add_module(
                f"{name}_{i}", InvertedResidualUnit(out_ch, out_ch, 1, expansion, shortcut=True)
            )
            self._rest.append(f"{name}_{i}")
        self._set_flat_blocks(self._rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._first_block(x)
        for block in self._flat_blocks:
            x = block(x)
        return x


class MobileNetV2(Backbone):
    """MobileNetV2 at width ``scale``.

    ``forward_stages`` returns five stage outputs at strides 2, 4, 8, 16 and 32 (modules
    ``conv2``, ``conv3``, ``conv4``, ``conv6``, ``conv8``; 16/24/32/96/320 channels at scale 1),
    the stages timm's ``mobilenetv2_100`` exposes. The 1x1 conv to 1280 (``conv9``) belongs to
    the head: ``forward_features`` applies it (1280-channel map, as timm's).
    """

    head_names = ("conv9", "out")
    classifier_name = "out"

    def __init__(self, scale: float = 1.0, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        self.scale = scale
        self.num_classes = num_classes
        in_ch = int(32 * scale)
        self.conv1 = _conv_bn(in_chans, in_ch, 3, 2, act="relu6")
        self._stages: list[str] = []
        self.feature_info = []
        reduction = 2
        for i, (t, c, n, s) in enumerate(_SETTINGS):
            name = f"conv{i + 2}"
            out_ch = int(c * scale)
            self.add_module(name, InvresiBlocks(in_ch, t, out_ch, n, s, name))
            self._stages.append(name)
            reduction *= s
            next_stride = _SETTINGS[i + 1][3] if i + 1 < len(_SETTINGS) else 2
            if next_stride == 2:  # last stage at this resolution
                self.feature_info.append(FeatureInfo(out_ch, reduction, name))
            in_ch = out_ch
        self._set_flat_blocks(self._stages)
        # Positions (among them) of the stages that end a resolution.
        self._stage_ends = [self._stages.index(f.module) for f in self.feature_info]
        self.out_c = int(1280 * scale) if scale > 1.0 else 1280
        self.conv9 = _conv_bn(in_ch, self.out_c, 1, act="relu6")
        self.pool2d_avg = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.head_hidden_size = self.out_c
        self.out = nn.Linear(self.out_c, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.conv1(x)
        return self._run_flat_blocks(x)[1]  # conv2 .. conv8

    def final_features(self, stages: List[torch.Tensor]) -> torch.Tensor:
        return self.conv9(stages[-1])  # the 1x1 conv to 1280 runs before pooling

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool2d_avg(x), 1)
        return x if pre_logits else self.out(x)


@register_model("MobileNetV2_x0_25")
def mobilenetv2_x0_25(**kwargs) -> MobileNetV2:
    return MobileNetV2(0.25, **kwargs)


@register_model("MobileNetV2_x0_5")
def mobilenetv2_x0_5(**kwargs) -> MobileNetV2:
    return MobileNetV2(0.5, **kwargs)


@register_model("MobileNetV2_x0_75")
def mobilenetv2_x0_75(**kwargs) -> MobileNetV2:
    return MobileNetV2(0.75, **kwargs)


@register_model("MobileNetV2")
def mobilenetv2(**kwargs) -> MobileNetV2:
    return MobileNetV2(1.0, **kwargs)


@register_model("MobileNetV2_x1_5")
def mobilenetv2_x1_5(**kwargs) -> MobileNetV2:
    return MobileNetV2(1.5, **kwargs)


@register_model("MobileNetV2_x2_0")
def mobilenetv2_x2_0(**kwargs) -> MobileNetV2:
    return MobileNetV2(2.0, **kwargs)


_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/MobileNetV2.md"
# MobileNet-family SSLD students were distilled from ResNet50_vd_ssld (SSLD_DOC).
_TEACHER = "resnet50_vd_ssld"


def _baseline(name: str, paddle_name: str, top1: float) -> WeightCard:
    # The model_zoo weights live directly under dygraph/, not legendary_models/.
    return WeightCard(
        name,
        name,
        (PADDLE_BASE + f"{paddle_name}_pretrained.pdparams",),
        top1=top1,
        top1_source=_DOC,
    )


register_weights(
    _baseline("mobilenetv2_x0_25", "MobileNetV2_x0_25", 53.2),
    _baseline("mobilenetv2_x0_5", "MobileNetV2_x0_5", 65.0),
    _baseline("mobilenetv2_x0_75", "MobileNetV2_x0_75", 69.8),
    _baseline("mobilenetv2", "MobileNetV2", 72.2),
    _baseline("mobilenetv2_x1_5", "MobileNetV2_x1_5", 74.1),
    _baseline("mobilenetv2_x2_0", "MobileNetV2_x2_0", 75.2),
    WeightCard(
        "mobilenetv2_ssld",
        "mobilenetv2",
        (PADDLE_BASE + "MobileNetV2_ssld_pretrained.pdparams",),
        top1=76.74,
        baseline_top1=72.2,
        top1_source=SSLD_DOC,
        teacher=_TEACHER,
    ),
)
