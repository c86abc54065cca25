"""Building blocks several families share (timm keeps its shared layers in ``timm/layers``).

* :class:`ConvBNAct`: PaddleClas's ``ConvBNLayer`` / ``ConvBNAct`` / ``ConvBNReLU``: conv without
  bias -> BatchNorm (Paddle's eps 1e-5, momentum 0.9 = torch's 0.1) -> optional activation, with
  an optional parameter-free layer before the conv (ResNet_vd's average pool, PP-HGNetV2's SAME
  pad) and one after the activation (PP-HGNetV2's learnable affine block).
* :func:`make_divisible`: PaddleClas's channel rounding (MobileNetV3, PP-LCNet, GhostNet,
  Next-ViT: the four copies compute the same thing).
* :class:`DownscaleInInferDropout`: Paddle's ``Dropout(mode="downscale_in_infer")``.
* :func:`float32`: a Python float rounded to float32, as Paddle keeps op attributes.
* :class:`DownsampleStage`, :class:`ConcatBlock`, :func:`init_weights_hgnet`: the stage and block
  forwards and the init that PP-HGNet and PP-HGNetV2 share.

Key names: the block is an ``nn.Sequential`` whose children carry the names PaddleClas gives
them, so a ``.pdparams`` file maps onto it key for key. Which names a family uses is this
module's table of :class:`KeyNames` (``LEGENDARY``, ``MODEL_ZOO``, ``WSL``, ``NEXTVIT``); a family
passes its entry as ``names=``. Being a ``Sequential`` (as torchvision's ``Conv2dNormActivation``)
keeps it plain for TorchScript, ``torch.fx`` and ``torch.export``, and BatchNorm folding
(:mod:`ssld_zoo.deploy.fuse`) swaps its children by name like any other module's.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import torch
import torch.nn as nn

__all__ = [
    "ConcatBlock",
    "ConvBNAct",
    "DownsampleStage",
    "DownscaleInInferDropout",
    "KeyNames",
    "LEGENDARY",
    "MODEL_ZOO",
    "NEXTVIT",
    "WSL",
    "create_act",
    "float32",
    "init_weights_hgnet",
    "make_divisible",
    "vd_avg_pool",
]


class KeyNames(NamedTuple):
    """The attribute names of a :class:`ConvBNAct`'s conv and BatchNorm (they are the
    ``.pdparams`` key parts: ``<block>.<conv>.weight``, ``<block>.<bn>._mean``...)."""

    conv: str = "conv"
    bn: str = "bn"


# PaddleClas's names, by the style of the family's source file.
LEGENDARY = KeyNames("conv", "bn")  # legendary_models/*: MobileNetV1/V3, PP-LCNet(V2),
#                                                 PP-HGNet(V2), ResNet_vd, HRNet
MODEL_ZOO = KeyNames("_conv", "_batch_norm")  # model_zoo/*: MobileNetV2, GhostNet, Res2Net_vd
WSL = KeyNames("_conv", "_bn")  # model_zoo/resnext101_wsl.py
NEXTVIT = KeyNames("conv", "norm")  # model_zoo/nextvit.py


def float32(v: float) -> float:
    """``v`` rounded to the nearest float32, as a Python float (no tensor: models may be built
    on the meta device). Paddle keeps op attributes (a hardsigmoid's slope, dropout's p) as
    float32, so in float64 it computes with 0.2f = 0.20000000298...; the same constants keep
    float64 parity at ~1e-12 instead of ~1e-8 (float32 results are identical either way)."""
    return struct.unpack("f", struct.pack("f", v))[0]


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """PaddleClas's ``_make_divisible``: ``v`` rounded (half up) to a multiple of ``divisor``,
    at least ``min_value`` (default ``divisor``), and one step up when rounding lost more than
    10% of ``v``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish}


def create_act(name: str, inplace: bool = True) -> nn.Module:
    """``"relu"``, ``"relu6"`` or ``"hardswish"`` as a module (in place by default: in these
    networks an activation follows a BN, conv or sum whose output nothing else reads)."""
    if name not in _ACTS:
        raise ValueError(f"activation {name!r} is not supported; expected one of {sorted(_ACTS)}")
    return _ACTS[name](inplace=inplace)


def vd_avg_pool(stride: int = 2) -> nn.AvgPool2d:
    """The 2x2 average pool of a "vd" projection shortcut (ResNet_vd, Res2Net_vd): Paddle's
    ``AvgPool2D(2, stride, ceil_mode=True)``, exclusive (padding is left out of the mean)."""
    return nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)


class ConvBNAct(nn.Sequential):
    """[pre] -> conv (no bias) -> BatchNorm -> [act -> [post]].

    Args:
        kernel, stride, groups: the conv's.
        padding: default ``(kernel - 1) // 2`` (PaddleClas's symmetric padding).
        act: None/False (none), True (in-place ReLU), a name for :func:`create_act`, or a module.
        names: the conv's and BN's attribute names (a :class:`KeyNames` of the table above).
        pre: ``(name, module)`` run before the conv; it must hold no parameters or buffers
            (a "vd" average pool, a padding), so that its name never reaches a key.
        post: ``(name, module)`` run after the activation (PP-HGNetV2's ``lab``); only
            where there is an activation, as in PaddleClas.
        eps, momentum: the BatchNorm's (Paddle's defaults: eps 1e-5, momentum 0.9 in
            Paddle's convention = 0.1 in torch's).

    The activation is registered as ``act``, ``pre`` and ``post`` under their own names; the
    conv and BN under ``names``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        padding: int | None = None,
        act: bool | str | nn.Module | None = None,
        names: KeyNames = LEGENDARY,
        pre: tuple[str, nn.Module] | None = None,
        post: tuple[str, nn.Module] | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ):
        super().__init__()
        if pre is not None:
            if any(True for _ in pre[1].parameters()) or any(True for _ in pre[1].buffers()):
                raise ValueError(f"ConvBNAct: pre layer {pre[0]!r} must hold no weights")
            self.add_module(*pre)
        self.add_module(
            names.conv,
            nn.Conv2d(
                in_ch,
                out_ch,
                kernel,
                stride,
                (kernel - 1) // 2 if padding is None else padding,
                groups=groups,
                bias=False,
            ),
        )
        self.add_module(names.bn, nn.BatchNorm2d(out_ch, eps=eps, momentum=momentum))
        if act is True:
            act = nn.ReLU(inplace=True)
        elif isinstance(act, str):
            act = create_act(act)
        if isinstance(act, nn.Module):
            self.add_module("act", act)
            if post is not None:
                self.add_module(*post)


class DownscaleInInferDropout(nn.Module):
    """Paddle's ``Dropout(p, mode="downscale_in_infer")``: training zeroes elements with
    probability ``p`` and does *not* rescale the kept ones; inference multiplies everything by
    ``1 - p``. (torch's dropout rescales in training instead: the same expectation, different
    inference outputs, e.g. logits 1.25x too large at p = 0.2.)"""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        # Paddle's kernel computes 1 - p in float32 (0.8 -> 0.800000011920929).
        self.keep = float32(1.0 - float32(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return x
        if self.training:  # a 0/1 mask: kept units are exactly the input
            return x * torch.empty_like(x).bernoulli_(1.0 - self.p)
        return x * self.keep

    def extra_repr(self) -> str:
        return f"p={self.p}, mode=downscale_in_infer"


def init_weights_hgnet(model: nn.Module) -> None:
    """PP-HGNet's and PP-HGNetV2's init (matters only when training from scratch):
    Kaiming-normal (fan-in, ReLU gain) convs, BN 1/0, Xavier-uniform Linear (Paddle's
    default), biases 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class DownsampleStage(nn.Module):
    """A stage that is ``downsample`` (a module, or None) then ``blocks``: PP-HGNet's and
    PP-HGNetV2's ``HG_Stage`` forward; the subclass registers the two."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


class ConcatBlock(nn.Module):
    """PP-HGNet's and PP-HGNetV2's ``HG_Block`` forward: ``layers`` run as a chain, their
    input and every output concatenated, through :meth:`aggregate`, plus the input when
    ``identity``. The subclass registers ``layers`` and ``identity`` and defines ``aggregate``."""

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outs.append(y)
        y = self.aggregate(torch.cat(outs, dim=1))
        return y + x if self.identity else y
