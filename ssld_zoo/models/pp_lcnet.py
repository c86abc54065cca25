"""PP-LCNet (Cui et al. 2021, arXiv 2109.15099), as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/legendary_models/pp_lcnet.py``. A MobileNetV1-like stack of depthwise
separable blocks with hardswish, 5x5 depthwise kernels in the later blocks, squeeze-excite only
in the last stage (ReLU, then Paddle's hardsigmoid ``clip(x * 0.1666667 + 0.5, 0, 1)``), and
a head of global pooling -> 1x1 conv to 1280 (no BN, no bias) -> hardswish -> dropout ->
Linear. The dropout is Paddle's ``downscale_in_infer`` kind: it multiplies by ``1 - p`` (0.8)
at inference, which the published accuracies include. Module names equal PaddleClas's.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn

from ssld_zoo.models._base import ConvHeadBackbone
from ssld_zoo.models.layers import ConvBNAct, DownscaleInInferDropout, create_act, make_divisible
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["PPLCNet", "DownscaleInInferDropout", "PaddleHardsigmoid", "make_divisible"]

# stage -> blocks of (depthwise kernel, in channels, out channels, stride, squeeze-excite)
_NET_CONFIG = {
    "blocks2": ((3, 16, 32, 1, False),),
    "blocks3": ((3, 32, 64, 2, False), (3, 64, 64, 1, False)),
    "blocks4": ((3, 64, 128, 2, False), (3, 128, 128, 1, False)),
    "blocks5": ((3, 128, 256, 2, False),) + ((5, 256, 256, 1, False),) * 5,
    "blocks6": ((5, 256, 512, 2, True), (5, 512, 512, 1, True)),
}
# Paddle's default hardsigmoid slope, 0.1666667 as the float32 its kernel receives: equal to
# Paddle in float64 too (1/6 differs by ~1e-7).
_HARDSIGMOID_SLOPE = 0.16666670143604279


class PaddleHardsigmoid(nn.Module):
    """``paddle.nn.Hardsigmoid()``: ``clip(x * 0.1666667 + 0.5, 0, 1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.slope = _HARDSIGMOID_SLOPE  # an attribute: TorchScript reads no global floats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.slope + 0.5).clamp_(0.0, 1.0)


class SEModule(nn.Module):
    """Squeeze-excite: pool -> 1x1 conv -> ReLU -> 1x1 conv -> Paddle hardsigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)
        self.hardsigmoid = PaddleHardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.relu(self.conv1(x.mean((2, 3), keepdim=True)))
        return x * self.hardsigmoid(self.conv2(s))


class DepthwiseSeparable(nn.Module):
    """depthwise conv-BN-act -> [SE] -> pointwise conv-BN-act."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        dw_size: int = 3,
        use_se: bool = False,
        act: str = "hardswish",
    ):
        super().__init__()
        self.dw_conv = ConvBNAct(in_ch, in_ch, dw_size, stride, groups=in_ch, act=act)
        self.se = SEModule(in_ch) if use_se else None
        self.pw_conv = ConvBNAct(in_ch, out_ch, 1, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


class PPLCNet(ConvHeadBackbone):
    """PP-LCNet at width ``scale``. ``forward_features`` returns the outputs of ``blocks2`` ..
    ``blocks6`` (PaddleClas's stage pattern), strides 2, 4, 8, 16, 32 by default.

    Args mirror PaddleClas's: ``drop_rate`` (downscale-in-infer), ``class_expand`` (width of
    the 1x1 head conv), ``use_last_conv`` (False: Linear straight on the pooled features),
    ``stride_list`` (strides of ``conv1`` and the first block of ``blocks3`` .. ``blocks6``),
    ``act``.
    """

    head_names = ("avg_pool", "last_conv", "act", "dropout", "fc")
    _stages = ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6")

    def __init__(
        self,
        scale: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        class_expand: int = 1280,
        use_last_conv: bool = True,
        stride_list: Sequence[int] = (2, 2, 2, 2, 2),
        act: str = "hardswish",
    ):
        super().__init__()
        if len(stride_list) != 5:
            raise ValueError(
                f"stride_list needs 5 strides (conv1, blocks3 .. blocks6), got {list(stride_list)}"
            )
        self.scale = scale
        self.num_classes = num_classes
        self.conv1 = ConvBNAct(in_chans, make_divisible(16 * scale), 3, stride_list[0], act=act)
        self.feature_info = []
        reduction = stride_list[0]
        for i, stage in enumerate(self._stages):
            blocks = []
            for j, (k, in_c, out_c, s, se) in enumerate(_NET_CONFIG[stage]):
                if j == 0 and i > 0:  # PaddleClas overwrites these strides with stride_list
                    s = stride_list[i]
                reduction *= s
                blocks.append(
                    DepthwiseSeparable(
                        make_divisible(in_c * scale), make_divisible(out_c * scale), s, k, se, act
                    )
                )
            setattr(self, stage, nn.Sequential(*blocks))
            self.feature_info.append(FeatureInfo(make_divisible(out_c * scale), reduction, stage))
        self._build_head(
            self.feature_info[-1].channels,
            num_classes,
            use_last_conv,
            class_expand,
            create_act(act),
            drop_rate,
        )
        self._set_flat_blocks(self._stages)
        self._stage_ends = list(range(len(self._stages)))  # every stage is returned

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.conv1(x)
        return self._run_flat_blocks(x)[1]  # blocks2 .. blocks6


@register_model("PPLCNet_x0_25")
def pplcnet_x0_25(**kwargs) -> PPLCNet:
    return PPLCNet(0.25, **kwargs)


@register_model("PPLCNet_x0_35")
def pplcnet_x0_35(**kwargs) -> PPLCNet:
    return PPLCNet(0.35, **kwargs)


@register_model("PPLCNet_x0_5")
def pplcnet_x0_5(**kwargs) -> PPLCNet:
    return PPLCNet(0.5, **kwargs)


@register_model("PPLCNet_x0_75")
def pplcnet_x0_75(**kwargs) -> PPLCNet:
    return PPLCNet(0.75, **kwargs)


@register_model("PPLCNet_x1_0")
def pplcnet_x1_0(**kwargs) -> PPLCNet:
    return PPLCNet(1.0, **kwargs)


@register_model("PPLCNet_x1_5")
def pplcnet_x1_5(**kwargs) -> PPLCNet:
    return PPLCNet(1.5, **kwargs)


@register_model("PPLCNet_x2_0")
def pplcnet_x2_0(**kwargs) -> PPLCNet:
    return PPLCNet(2.0, **kwargs)


@register_model("PPLCNet_x2_5")
def pplcnet_x2_5(**kwargs) -> PPLCNet:
    return PPLCNet(2.5, **kwargs)


_LEGENDARY = PADDLE_BASE + "legendary_models/"
_LCNET_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/PP-LCNet.md"
# Published top-1 of PaddleClas's normally trained weights (PP-LCNet.md).
_BASELINE_TOP1 = {
    "x0_25": 51.86,
    "x0_35": 58.09,
    "x0_5": 63.14,
    "x0_75": 68.18,
    "x1_0": 71.32,
    "x1_5": 73.71,
    "x2_0": 75.18,
    "x2_5": 76.60,
}
# SSLD top-1 (ssld.md; PP-LCNet.md agrees for x0_5, x1_0, x2_5 and omits x0_25).
_SSLD_TOP1 = {"x0_25": 53.43, "x0_5": 66.10, "x1_0": 74.39, "x2_5": 80.82}
# Only the x1_0 and x2_5 SSLD configs are published; both distil from ResNet50_vd_ssld.
_TEACHERS = {"x1_0": "resnet50_vd_ssld", "x2_5": "resnet50_vd_ssld"}


def _cards() -> list[WeightCard]:
    cards = []
    for suffix in _BASELINE_TOP1:
        arch = f"pplcnet_{suffix}"
        cards.append(
            WeightCard(
                arch,
                arch,
                (f"{_LEGENDARY}PPLCNet_{suffix}_pretrained.pdparams",),
                top1=_BASELINE_TOP1[suffix],
                top1_source=_LCNET_DOC,
            )
        )
        if suffix in _SSLD_TOP1:
            teacher = _TEACHERS.get(suffix)
            note = (
                f"Teacher from PaddleClas ppcls/configs/ImageNet/Distillation/"
                f"PPLCNet_{suffix}_ssld.yaml."
                if teacher
                else "Teacher not stated in PaddleClas's docs or configs."
            )
            cards.append(
                WeightCard(
                    f"{arch}_ssld",
                    arch,
                    (f"{_LEGENDARY}PPLCNet_{suffix}_ssld_pretrained.pdparams",),
                    top1=_SSLD_TOP1[suffix],
                    baseline_top1=_BASELINE_TOP1[suffix],
                    top1_source=SSLD_DOC,
                    teacher=teacher,
                    description=note,
                )
            )
    return cards


register_weights(*_cards())
