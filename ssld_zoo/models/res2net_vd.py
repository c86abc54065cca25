"""Res2Net_vd (Gao et al. 2019, "Res2Net", with ResNet_vd's stem and shortcuts), as PaddleClas
2.6.0 builds it.

``ppcls/arch/backbone/model_zoo/res2net_vd.py``. A bottleneck's 3x3 conv is replaced by ``scales``
narrow 3x3 convs over channel splits of the 1x1 output. What differs from timm's ``res2net50d``
(and must, for the numbers to match):

* the first block of stages 2-4 (stride 2) runs every split's conv *independently* with stride 2
  and passes the last split through ``AvgPool(3, 2, 1)`` that excludes padding from the average;
* stride-1 blocks add each conv's output into the next split (hierarchical residual) and pass the
  last split unchanged - stage 1's first block included, though it has a projection shortcut;
* vd shortcuts: stage 1's projection is a plain 1x1 conv, later ones average-pool 2x2 first.

This is one of PaddleClas's older "model_zoo" files, whose module names come from the 2.0-era
static-graph names: blocks are flat attributes ``bb_<stage>_<i>``, a block's split convs are
``res<stage+2><letter>_branch2b_<s>`` and the head is ``out``. The attributes here carry the very
same names so that a ``.pdparams`` file maps onto this model key for key.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from ssld_zoo.models._base import Backbone, FlatBlocks
from ssld_zoo.models.layers import MODEL_ZOO, ConvBNAct, vd_avg_pool
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["Res2NetVd"]

_DEPTHS = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 12, 48, 3),
}


def _conv_bn(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, act: bool = False, vd_pool: bool = False
) -> ConvBNAct:
    """[avg-pool 2x2 when ``vd_pool``] -> conv (no bias) -> BN -> [ReLU], under PaddleClas's
    model_zoo names ``_pool2d_avg``/``_conv``/``_batch_norm``."""
    pre = ("_pool2d_avg", vd_avg_pool(2)) if vd_pool else None
    return ConvBNAct(in_ch, out_ch, kernel, stride, act=act, names=MODEL_ZOO, pre=pre)


class BottleneckBlock(FlatBlocks):
    """Res2Net bottleneck: 1x1 -> ``scales`` splits, ``scales - 1`` of them through 3x3 convs ->
    concat -> 1x1, plus the (projected) shortcut, then ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        width: int,
        stride: int,
        scales: int,
        project: bool,
        first_block: bool,
        name: str,
    ):
        super().__init__()
        if width % scales:
            raise ValueError(f"Res2Net width {width} is not divisible by scales {scales}")
        self.stride = stride
        self.scales = scales
        self.conv0 = _conv_bn(in_ch, width, 1, act=True)
        split = width // scales
        # PaddleClas registers each split conv under its old static-graph name.
        self._split_names = [f"{name}_branch2b_{s + 1}" for s in range(scales - 1)]
        for sub in self._split_names:
            self.add_module(sub, _conv_bn(split, split, 3, stride, act=True))
        self._set_flat_blocks(self._split_names)
        # Paddle's AvgPool2D default is exclusive: padding is left out of the average.
        self.pool2d_avg = (
            nn.AvgPool2d(3, stride, 1, count_include_pad=False) if stride != 1 else None
        )
        self.conv2 = _conv_bn(width, out_ch, 1)
        # Stage 1's projection has nothing to downsample; later ones pool 2x2, then 1x1 conv.
        self.short = _conv_bn(in_ch, out_ch, 1, vd_pool=not first_block) if project else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = torch.chunk(self.conv0(x), self.scales, dim=1)
        ys: list[torch.Tensor] = []
        for s, conv in enumerate(self._flat_blocks):
            # Strided blocks convolve each split on its own; others add the previous output in.
            ys.append(conv(xs[s]) if s == 0 or self.stride != 1 else conv(xs[s] + ys[-1]))
        ys.append(xs[-1] if self.pool2d_avg is None else self.pool2d_avg(xs[-1]))
        y = self.conv2(torch.cat(ys, dim=1))
        y += x if self.short is None else self.short(x)  # y is BN's fresh output: safe in place
        return self.relu(y)


def _block_name(depth: int, stage: int, i: int) -> str:
    # PaddleClas's names: res2a, res2b, ...; the deep models' stage 3 counts res4a, res4b1, ...
    if depth in (101, 152, 200) and stage == 2:
        return f"res{stage + 2}a" if i == 0 else f"res{stage + 2}b{i}"
    return f"res{stage + 2}{chr(97 + i)}"


class Res2NetVd(Backbone):
    """Res2Net_vd. ``forward_stages`` returns the four stage outputs (strides 4, 8, 16, 32)."""

    head_names = ("out",)
    classifier_name = "out"

    def __init__(
        self,
        depth: int = 50,
        scales: int = 4,
        width: int = 26,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"Res2Net_vd depth {depth} is not one of {sorted(_DEPTHS)}")
        self.num_classes = num_classes
        self.conv1_1 = _conv_bn(in_chans, 32, 3, 2, act=True)
        self.conv1_2 = _conv_bn(32, 32, 3, 1, act=True)
        self.conv1_3 = _conv_bn(32, 64, 3, 1, act=True)
        self.pool2d_max = nn.MaxPool2d(3, 2, 1)
        self._block_names: list[str] = []
        self.feature_info: list[FeatureInfo] = []
        in_ch, reduction = 64, 4
        for stage, n in enumerate(_DEPTHS[depth]):
            out_ch = 256 * 2**stage
            for i in range(n):
                name = f"bb_{stage}_{i}"
                self.add_module(
                    name,
                    BottleneckBlock(
                        in_ch,
                        out_ch,
                        width * scales * 2**stage,
                        stride=2 if i == 0 and stage > 0 else 1,
                        scales=scales,
                        project=(i == 0),
                        first_block=(stage == 0 and i == 0),
                        name=_block_name(depth, stage, i),
                    ),
                )
                self._block_names.append(name)
                in_ch = out_ch
            reduction *= 1 if stage == 0 else 2
            self.feature_info.append(FeatureInfo(out_ch, reduction, name))
        self._set_flat_blocks(self._block_names)
        self._stage_ends = [self._block_names.index(f.module) for f in self.feature_info]
        self.pool2d_avg = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.head_hidden_size = in_ch
        self.out = nn.Linear(in_ch, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.pool2d_max(self.conv1_3(self.conv1_2(self.conv1_1(x))))
        return self._run_flat_blocks(x)[1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool2d_avg(x), 1)
        return x if pre_logits else self.out(x)


@register_model("Res2Net50_vd_26w_4s")
def res2net50_vd_26w_4s(**kwargs) -> Res2NetVd:
    """Res2Net50_vd, 4 scales of width 26 (25.1 M parameters)."""
    return Res2NetVd(50, scales=4, width=26, **kwargs)


@register_model("Res2Net101_vd_26w_4s")
def res2net101_vd_26w_4s(**kwargs) -> Res2NetVd:
    """Res2Net101_vd, 4 scales of width 26 (45.2 M parameters)."""
    return Res2NetVd(101, scales=4, width=26, **kwargs)


@register_model("Res2Net200_vd_26w_4s")
def res2net200_vd_26w_4s(**kwargs) -> Res2NetVd:
    """Res2Net200_vd, 4 scales of width 26 (76.2 M parameters)."""
    return Res2NetVd(200, scales=4, width=26, **kwargs)


# Baseline top-1 (and the SSLD numbers, which agree) from SSLD_DOC; per-model doc:
_RES2NET_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/Res2Net.md"
# The SSLD docs name ResNeXt101_32x16d_wsl as the teacher of "ResNet series" students and give
# no teacher for Res2Net, so the cards leave it unstated rather than guess.
_NO_TEACHER = (
    "SSLD student; PaddleClas does not document its teacher (ResNet-series students "
    "used ResNeXt101_32x16d_wsl)."
)


def _cards(depth: int, base: float, ssld: float) -> tuple[WeightCard, WeightCard]:
    arch = f"res2net{depth}_vd_26w_4s"
    paddle = f"Res2Net{depth}_vd_26w_4s"
    return (
        WeightCard(
            arch,
            arch,
            (f"{PADDLE_BASE}{paddle}_pretrained.pdparams",),
            top1=base,
            top1_source=SSLD_DOC,
        ),
        WeightCard(
            f"{arch}_ssld",
            arch,
            (f"{PADDLE_BASE}{paddle}_ssld_pretrained.pdparams",),
            top1=ssld,
            baseline_top1=base,
            top1_source=SSLD_DOC,
            teacher=None,
            description=_NO_TEACHER,
        ),
    )


# SSLD_DOC (server table) gives 79.8/80.6/81.2 -> 83.1/83.9/85.1; _RES2NET_DOC agrees
# (0.798/0.806/0.812 and 0.831/0.839/0.851).
register_weights(*_cards(50, 79.8, 83.1), *_cards(101, 80.6, 83.9), *_cards(200, 81.2, 85.1))
