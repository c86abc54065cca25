"""GhostNet (Han et al. 2020, arXiv 1911.11907), as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/model_zoo/ghostnet.py``. What differs from the original PyTorch release
(and timm): channel rounding uses ``make_divisible(v, 4)``; the ghost module concatenates all
of its channels (no slicing, the counts are always even); the squeeze-excite gate is two
*Linear* layers with ReLU and then ``clip(0, 1)`` (not a hard sigmoid), reducing to
``channels // 4``; the head is global pooling -> 1x1 conv-BN-ReLU to 1280 (``fc_0``) ->
ordinary dropout 0.2 -> Linear (``fc_1``). Module names equal PaddleClas's old-style ones
(``conv1``, ``_ghostbottleneck_<i>``, ``conv_last``, ``_conv``/``_batch_norm``), so that a
``.pdparams`` file maps key for key.
"""

from __future__ import annotations

import math
from functools import partial
from typing import List

import torch
import torch.nn as nn

from ssld_zoo.models._base import Backbone
from ssld_zoo.models.layers import MODEL_ZOO, ConvBNAct, make_divisible
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["GhostNet", "make_divisible"]

# conv (no bias) -> BN -> [ReLU] (Paddle's ``BatchNorm(act=...)`` fuses the activation),
# keys _conv/_batch_norm.
_conv_bn = partial(ConvBNAct, names=MODEL_ZOO)

# kernel, expansion (hidden) channels, output channels, squeeze-excite, stride
_CFGS = (
    (3, 16, 16, False, 1),
    (3, 48, 24, False, 2),
    (3, 72, 24, False, 1),
    (5, 72, 40, True, 2),
    (5, 120, 40, True, 1),
    (3, 240, 80, False, 2),
    (3, 200, 80, False, 1),
    (3, 184, 80, False, 1),
    (3, 184, 80, False, 1),
    (3, 480, 112, True, 1),
    (3, 672, 112, True, 1),
    (5, 672, 160, True, 2),
    (5, 960, 160, False, 1),
    (5, 960, 160, True, 1),
    (5, 960, 160, False, 1),
    (5, 960, 160, True, 1),
)
# The last block of each resolution: its output is that stage's feature map (stride 2 .. 16);
# stride 32 is ``conv_last``, the map the classifier pools.
_STAGE_ENDS = (0, 2, 4, 10)
_HEAD_CHANNELS = 1280


class SEBlock(nn.Module):
    """Squeeze-excite with Linear layers and a ``clip(0, 1)`` gate (PaddleClas GhostNet)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        mid = channels // reduction
        self.squeeze = nn.Linear(channels, mid)
        self.excitation = nn.Linear(mid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x.mean((2, 3))))
        gate = self.excitation(s).clamp_(0.0, 1.0)
        return x * gate[:, :, None, None]


class GhostModule(nn.Module):
    """A 1x1 "primary" conv to half the channels, a depthwise "cheap" conv making the other
    half from them, concatenated."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        relu: bool = True,
    ):
        super().__init__()
        init_ch = int(math.ceil(out_ch / ratio))
        new_ch = init_ch * (ratio - 1)
        self.primary_conv = _conv_bn(in_ch, init_ch, kernel, stride, act=relu)
        self.cheap_operation = _conv_bn(init_ch, new_ch, dw_size, 1, groups=init_ch, act=relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.primary_conv(x)
        return torch.cat([x, self.cheap_operation(x)], dim=1)


class GhostBottleneck(nn.Module):
    """ghost (expand) -> [depthwise stride 2] -> [SE] -> ghost (project, linear) + shortcut."""

    def __init__(
        self, in_ch: int, hidden: int, out_ch: int, kernel: int, stride: int, use_se: bool
    ):
        super().__init__()
        self.ghost_module_1 = GhostModule(in_ch, hidden, relu=True)
        self.depthwise_conv = (
            _conv_bn(hidden, hidden, kernel, stride, groups=hidden) if stride == 2 else None
        )
        self.se_block = SEBlock(hidden) if use_se else None
        self.ghost_module_2 = GhostModule(hidden, out_ch, relu=False)
        if stride != 1 or in_ch != out_ch:
            self.shortcut_depthwise = _conv_bn(in_ch, in_ch, kernel, stride, groups=in_ch)
            self.shortcut_conv = _conv_bn(in_ch, out_ch, 1)
        else:
            self.shortcut_depthwise = self.shortcut_conv = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ghost_module_1(x)
        if self.depthwise_conv is not None:
            y = self.depthwise_conv(y)
        if self.se_block is not None:
            y = self.se_block(y)
        y = self.ghost_module_2(y)
        if self.shortcut_conv is None:
            return y + x
        return y + self.shortcut_conv(self.shortcut_depthwise(x))


class GhostNet(Backbone):
    """GhostNet at width ``scale``. ``forward_stages`` returns five maps, strides 2 to 32
    (the last is ``conv_last``'s 960*scale-channel map, the one the classifier pools)."""

    head_names = ("pool2d_gap", "fc_0", "dropout", "fc_1")
    classifier_name = "fc_1"

    def __init__(
        self, scale: float = 1.0, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2
    ):
        super().__init__()
        self.scale = scale
        self.num_classes = num_classes
        out_ch = make_divisible(16 * scale, 4)
        self.conv1 = _conv_bn(in_chans, out_ch, 3, 2, act=True)
        self._block_names: list[str] = []
        self.feature_info = []
        reduction = 2
        for idx, (k, exp, c, se, s) in enumerate(_CFGS):
            in_ch, out_ch = out_ch, make_divisible(c * scale, 4)
            name = f"_ghostbottleneck_{idx}"
            # Flat attributes, as PaddleClas registers them (add_sublayer), so keys match.
            self.add_module(
                name, GhostBottleneck(in_ch, make_divisible(exp * scale, 4), out_ch, k, s, se)
            )
            self._block_names.append(name)
            reduction *= s
            if idx in _STAGE_ENDS:
                self.feature_info.append(FeatureInfo(out_ch, reduction, name))
        last_ch = make_divisible(_CFGS[-1][1] * scale, 4)
        self.conv_last = _conv_bn(out_ch, last_ch, 1, act=True)
        self.feature_info.append(FeatureInfo(last_ch, reduction, "conv_last"))
        self._set_flat_blocks(self._block_names)
        # Positions (among the blocks) of the blocks that end a stage.
        self._stage_ends = [self._block_names.index(f.module) for f in self.feature_info[:-1]]
        self.num_features = last_ch
        self.head_hidden_size = _HEAD_CHANNELS
        self.pool2d_gap = nn.AdaptiveAvgPool2d(1)
        self.fc_0 = _conv_bn(last_ch, _HEAD_CHANNELS, 1, act=True)
        self.dropout = nn.Dropout(p=drop_rate)  # Paddle's default mode: the usual kind
        self.fc_1 = nn.Linear(_HEAD_CHANNELS, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.conv1(x)
        x, outs = self._run_flat_blocks(x)
        if self.conv_last is not None:
            outs.append(self.conv_last(x))
        return outs

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.dropout(self.fc_0(self.pool2d_gap(x))), 1)
        return x if pre_logits else self.fc_1(x)


@register_model("GhostNet_x0_5")
def ghostnet_x0_5(**kwargs) -> GhostNet:
    return GhostNet(0.5, **kwargs)


@register_model("GhostNet_x1_0")
def ghostnet_x1_0(**kwargs) -> GhostNet:
    return GhostNet(1.0, **kwargs)


@register_model("GhostNet_x1_3")
def ghostnet_x1_3(**kwargs) -> GhostNet:
    return GhostNet(1.3, **kwargs)


_GHOSTNET_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/GhostNet.md"


def _baseline(arch: str, file_stem: str, top1: float) -> WeightCard:
    return WeightCard(
        arch,
        arch,
        (f"{PADDLE_BASE}{file_stem}_pretrained.pdparams",),
        top1=top1,
        top1_source=_GHOSTNET_DOC,
    )


register_weights(
    _baseline("ghostnet_x0_5", "GhostNet_x0_5", 66.8),
    _baseline("ghostnet_x1_0", "GhostNet_x1_0", 74.0),
    _baseline("ghostnet_x1_3", "GhostNet_x1_3", 75.7),
    WeightCard(
        "ghostnet_x1_3_ssld",
        "ghostnet_x1_3",
        (PADDLE_BASE + "GhostNet_x1_3_ssld_pretrained.pdparams",),
        top1=79.4,
        baseline_top1=75.7,
        top1_source=SSLD_DOC,
        description="Teacher not stated in PaddleClas's docs or configs (its SSLD doc "
        "uses ResNet50_vd_ssld for mobile students). GhostNet.md gives "
        "79.4 too; the 2020 release note says 79.38.",
    ),
)
