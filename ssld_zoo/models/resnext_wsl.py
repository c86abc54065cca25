"""ResNeXt-101 32xWd "WSL" (Mahajan et al. 2018, Instagram-pretrained), as PaddleClas 2.6.0
builds it: the SSLD teachers.

``ppcls/arch/backbone/model_zoo/resnext101_wsl.py``. The network is torchvision's ResNeXt-101
(7x7 stem, max-pool, bottlenecks with stride on the grouped 3x3 conv, projection shortcut =
strided 1x1 conv + BN) with 32 groups of width W; module names are PaddleClas's
(``_conv_stem``, ``_conv<stage>_<block>`` with ``_conv0/1/2`` and ``_short._conv``, ``_out``).

PaddleClas's weights are a conversion of Facebook's original PyTorch release; that release (in
torchvision's key names) loads too: :func:`checkpoint_filter_fn` renames its keys.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, List, Mapping

import torch
import torch.nn as nn

from ssld_zoo.models._base import Backbone
from ssld_zoo.models.layers import WSL, ConvBNAct
from ssld_zoo.registry import PADDLE_BASE, FeatureInfo, WeightCard, register_model, register_weights

__all__ = ["ResNeXt101WSL", "checkpoint_filter_fn"]

# conv (no bias) -> BN -> [ReLU] (Paddle's ``BatchNorm(act="relu")``), keys _conv/_bn.
_conv_bn = partial(ConvBNAct, names=WSL)

_DEPTHS = (3, 4, 23, 3)
_CARDINALITY = 32


class ShortCut(nn.Module):
    """Identity, or a strided 1x1 conv + BN (``_conv``) when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self._conv = _conv_bn(in_ch, out_ch, 1, stride) if in_ch != out_ch or stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self._conv is None else self._conv(x)


class BottleneckBlock(nn.Module):
    """1x1 -> grouped 3x3 (stride) -> 1x1, plus shortcut, ReLU."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int, groups: int):
        super().__init__()
        self._conv0 = _conv_bn(in_ch, mid_ch, 1, act=True)
        self._conv1 = _conv_bn(mid_ch, mid_ch, 3, stride, groups=groups, act=True)
        self._conv2 = _conv_bn(mid_ch, out_ch, 1)
        self._short = ShortCut(in_ch, out_ch, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv2(self._conv1(self._conv0(x)))
        return self.relu(y + self._short(x))


class ResNeXt101WSL(Backbone):
    """ResNeXt-101 32x``width``d. ``forward_stages`` returns the four stage outputs
    (strides 4, 8, 16, 32; 256/512/1024/2048 channels for every width)."""

    head_names = ("_out",)
    classifier_name = "_out"

    def __init__(self, width: int = 16, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        if width % 8 or width <= 0:
            raise ValueError(
                f"ResNeXt101_wsl group width must be a positive multiple of 8, got {width}"
            )
        self.width = width
        self.num_classes = num_classes
        self._conv_stem = _conv_bn(in_chans, 64, 7, 2, act=True)
        self._pool = nn.MaxPool2d(3, 2, 1)
        self._blocks: list[str] = []
        self.feature_info = []
        in_ch, reduction = 64, 4
        for stage, n in enumerate(_DEPTHS):
            mid = _CARDINALITY * width * 2**stage  # grouped-conv width
            out = 256 * 2**stage
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                name = f"_conv{stage + 1}_{i}"
                self.add_module(name, BottleneckBlock(in_ch, mid, out, stride, _CARDINALITY))
                self._blocks.append(name)
                in_ch = out
            reduction *= 1 if stage == 0 else 2
            self.feature_info.append(FeatureInfo(out, reduction, name))
        self._set_flat_blocks(self._blocks)
        self._stage_ends = [self._blocks.index(f.module) for f in self.feature_info]
        self._avg_pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.head_hidden_size = in_ch
        self._out = nn.Linear(in_ch, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self._pool(self._conv_stem(x))
        return self._run_flat_blocks(x)[1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self._avg_pool(x), 1)
        return x if pre_logits else self._out(x)


# torchvision / original WSL release names -> PaddleClas names (same tensors, same layout).
_TV_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(conv|bn)([123])\.(.+)$")
_TV_DOWN = re.compile(r"^layer(\d)\.(\d+)\.downsample\.([01])\.(.+)$")


def _rename_torchvision(key: str) -> str:
    if m := _TV_BLOCK.match(key):
        stage, block, kind, idx, rest = m.groups()
        sub = "_conv" if kind == "conv" else "_bn"
        return f"_conv{stage}_{block}._conv{int(idx) - 1}.{sub}.{rest}"
    if m := _TV_DOWN.match(key):
        stage, block, idx, rest = m.groups()
        sub = "_conv" if idx == "0" else "_bn"
        return f"_conv{stage}_{block}._short._conv.{sub}.{rest}"
    head, _, rest = key.partition(".")
    prefix = {"conv1": "_conv_stem._conv", "bn1": "_conv_stem._bn", "fc": "_out"}.get(head)
    return f"{prefix}.{rest}" if prefix else key  # unknown keys keep their name (reported)


def checkpoint_filter_fn(state: Mapping[str, Any]) -> dict[str, Any]:
    """Map a state dict in torchvision's ResNeXt names (the original PyTorch WSL release,
    ``ig_resnext101_32x*.pth``, or ``torchvision.models.resnext101_32x8d``) onto this
    module's names. Any other state dict (PaddleClas's ``.pdparams``, an exported zoo file)
    is returned unchanged. A ``module.`` prefix (DataParallel) is removed first."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if "layer1.0.conv1.weight" not in state:
        return dict(state)
    return {_rename_torchvision(k): v for k, v in state.items()}


# Parity against PaddleClas runs in float64 on CPU; the wide teachers use a small input so
# that it stays cheap (the weights dominate the memory: 32x48d is 829M parameters).
@register_model("ResNeXt101_32x8d_wsl")
def resnext101_32x8d_wsl(**kwargs) -> ResNeXt101WSL:
    return ResNeXt101WSL(8, **kwargs)


@register_model("ResNeXt101_32x16d_wsl")
def resnext101_32x16d_wsl(**kwargs) -> ResNeXt101WSL:
    return ResNeXt101WSL(16, **kwargs)


@register_model("ResNeXt101_32x32d_wsl")
def resnext101_32x32d_wsl(**kwargs) -> ResNeXt101WSL:
    return ResNeXt101WSL(32, **kwargs)


@register_model("ResNeXt101_32x48d_wsl")
def resnext101_32x48d_wsl(**kwargs) -> ResNeXt101WSL:
    return ResNeXt101WSL(48, **kwargs)


_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/ResNeXt101_wsl.md"
_TORCH_BASE = "https://download.pytorch.org/models/"
_LICENSE = "CC-BY-NC-4.0"  # Facebook's WSL-Images weights: non-commercial use only

# zoo name, PaddleClas file stem, original release file, published top-1 (_DOC)
_TEACHERS = (
    ("resnext101_32x8d_wsl", "ResNeXt101_32x8d_wsl", "ig_resnext101_32x8-c38310e5.pth", 82.6),
    # ppcls 2.6.0's MODEL_URLS spells this file "ResNeXt101_32x16_wsl" (a typo): the file on
    # the server is ResNeXt101_32x16d_wsl_pretrained.pdparams.
    ("resnext101_32x16d_wsl", "ResNeXt101_32x16d_wsl", "ig_resnext101_32x16-c6f796b0.pth", 84.2),
    ("resnext101_32x32d_wsl", "ResNeXt101_32x32d_wsl", "ig_resnext101_32x32-e4b90b00.pth", 85.0),
    ("resnext101_32x48d_wsl", "ResNeXt101_32x48d_wsl", "ig_resnext101_32x48-3e41cc8a.pth", 85.4),
)

register_weights(
    *(
        WeightCard(
            name,
            name,
            (PADDLE_BASE + f"{stem}_pretrained.pdparams", _TORCH_BASE + pth),
            top1=top1,
            top1_source=_DOC,
            license=_LICENSE,
            description="Instagram-pretrained (WSL), ImageNet-1k fine-tuned; PaddleClas's "
            "conversion of Facebook's release, which is the mirror URL.",
        )
        for name, stem, pth, top1 in _TEACHERS
    )
)
