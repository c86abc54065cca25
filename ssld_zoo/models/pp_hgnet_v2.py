"""PP-HGNetV2 B0-B6, as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/legendary_models/pp_hgnet_v2.py``. Changes from PP-HGNet: a stem with a
two-branch 2x2-conv / 2x2-max-pool part; stages 3-4 use "light" layers (1x1 conv-BN, then
depthwise 5x5 conv-BN-ReLU); the aggregation is a 1x1 squeeze to out/2 then a 1x1 excitation
to out (no ESE); B0-B3 put a learnable affine block (LAB: ``scale * x + bias``, one scalar
each) after every ReLU, including the head's.

Details that change the numbers:

* the stem's 2x2 convs and max-pool use Paddle's ``padding="SAME"``, which for a 2x2 window
  at stride 1 pads one row/column at the bottom/right only;
* Paddle's max-pool excludes padding from the max (it pads with -inf). timm pads with zeros,
  which differs where LAB makes activations negative (B0-B3);
* LAB only exists where a ReLU does: never on the 1x1 conv of a light layer nor on the
  stride-2 depthwise down-sampling conv (Paddle builds it only when ``use_act``).

Module names equal PaddleClas's (``stem.stem1`` ... ``stages.N.blocks.M.layers.K``).
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssld_zoo.models._base import ConvHeadBackbone
from ssld_zoo.models.layers import ConcatBlock, ConvBNAct, DownsampleStage, init_weights_hgnet
from ssld_zoo.registry import (
    PADDLE_BASE,
    EvalTransform,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["PPHGNetV2"]

# name -> (stem (mid, out), per stage (in, mid, out, blocks, downsample, light, kernel, layers),
#          use_lab)
_CONFIGS = {
    "B0": (
        (16, 16),
        (
            (16, 16, 64, 1, False, False, 3, 3),
            (64, 32, 256, 1, True, False, 3, 3),
            (256, 64, 512, 2, True, True, 5, 3),
            (512, 128, 1024, 1, True, True, 5, 3),
        ),
        True,
    ),
    "B1": (
        (24, 32),
        (
            (32, 32, 64, 1, False, False, 3, 3),
            (64, 48, 256, 1, True, False, 3, 3),
            (256, 96, 512, 2, True, True, 5, 3),
            (512, 192, 1024, 1, True, True, 5, 3),
        ),
        True,
    ),
    "B2": (
        (24, 32),
        (
            (32, 32, 96, 1, False, False, 3, 4),
            (96, 64, 384, 1, True, False, 3, 4),
            (384, 128, 768, 3, True, True, 5, 4),
            (768, 256, 1536, 1, True, True, 5, 4),
        ),
        True,
    ),
    "B3": (
        (24, 32),
        (
            (32, 32, 128, 1, False, False, 3, 5),
            (128, 64, 512, 1, True, False, 3, 5),
            (512, 128, 1024, 3, True, True, 5, 5),
            (1024, 256, 2048, 1, True, True, 5, 5),
        ),
        True,
    ),
    "B4": (
        (32, 48),
        (
            (48, 48, 128, 1, False, False, 3, 6),
            (128, 96, 512, 1, True, False, 3, 6),
            (512, 192, 1024, 3, True, True, 5, 6),
            (1024, 384, 2048, 1, True, True, 5, 6),
        ),
        False,
    ),
    "B5": (
        (32, 64),
        (
            (64, 64, 128, 1, False, False, 3, 6),
            (128, 128, 512, 2, True, False, 3, 6),
            (512, 256, 1024, 5, True, True, 5, 6),
            (1024, 512, 2048, 2, True, True, 5, 6),
        ),
        False,
    ),
    "B6": (
        (48, 96),
        (
            (96, 96, 192, 2, False, False, 3, 6),
            (192, 192, 512, 3, True, False, 3, 6),
            (512, 384, 1024, 6, True, True, 5, 6),
            (1024, 768, 2048, 3, True, True, 5, 6),
        ),
        False,
    ),
}


def _pad_same_2x2(x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    # Paddle "SAME" for a 2x2 window at stride 1: total padding 1, all of it after.
    return F.pad(x, (0, 1, 0, 1), value=value)


class LearnableAffineBlock(nn.Module):
    """``scale * x + bias`` with one learnable scalar each (PaddleClas trains them at lr 0.01x)."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), scale_value))
        self.bias = nn.Parameter(torch.full((1,), bias_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.bias


def _conv_bn_act(
    in_ch: int,
    out_ch: int,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    use_act: bool = True,
    use_lab: bool = False,
    same_pad: bool = False,
) -> ConvBNAct:
    """PaddleClas's ``ConvBNAct``: conv (no bias) -> BN -> [ReLU -> [LAB]]; ``same_pad``:
    Paddle's SAME padding (2x2, stride 1: one row/column after)."""
    if same_pad and (kernel != 2 or stride != 1):
        raise ValueError("SAME padding is only ported for the stem's 2x2 stride-1 convs")
    return ConvBNAct(
        in_ch,
        out_ch,
        kernel,
        stride,
        groups,
        padding=0 if same_pad else None,
        act=use_act,
        pre=("pad", nn.ZeroPad2d((0, 1, 0, 1))) if same_pad else None,
        post=("lab", LearnableAffineBlock()) if use_act and use_lab else None,
    )


class LightConvBNAct(nn.Module):  # two layers.ConvBNAct: PaddleClas's conv1/conv2 keys
    """1x1 conv-BN (no activation) then depthwise ``kernel`` conv-BN-ReLU[-LAB]."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, use_lab: bool = False):
        super().__init__()
        self.conv1 = _conv_bn_act(in_ch, out_ch, 1, use_act=False, use_lab=use_lab)
        self.conv2 = _conv_bn_act(
            out_ch, out_ch, kernel, groups=out_ch, use_act=True, use_lab=use_lab
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class StemBlock(nn.Module):
    """3x3/2 conv; then [2x2 conv -> 2x2 conv] beside a 2x2/1 max-pool, concatenated;
    3x3/2 conv; 1x1 conv. Stride 4 in all."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, use_lab: bool = False):
        super().__init__()
        self.stem1 = _conv_bn_act(in_ch, mid_ch, 3, 2, use_lab=use_lab)
        self.stem2a = _conv_bn_act(mid_ch, mid_ch // 2, 2, 1, use_lab=use_lab, same_pad=True)
        self.stem2b = _conv_bn_act(mid_ch // 2, mid_ch, 2, 1, use_lab=use_lab, same_pad=True)
        self.stem3 = _conv_bn_act(mid_ch * 2, mid_ch, 3, 2, use_lab=use_lab)
        self.stem4 = _conv_bn_act(mid_ch, out_ch, 1, 1, use_lab=use_lab)
        self.pool = nn.MaxPool2d(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem1(x)
        x2 = self.stem2b(self.stem2a(x))
        # -inf padding: Paddle's max-pool never lets a padded cell win.
        x1 = self.pool(_pad_same_2x2(x, float("-inf")))
        return self.stem4(self.stem3(torch.cat([x1, x2], dim=1)))


class HGV2_Block(ConcatBlock):  # noqa: N801 - PaddleClas's name
    """``layer_num`` chained layers; input and all outputs concatenated; 1x1 squeeze to out/2,
    1x1 excitation to out; residual when ``identity``."""

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        out_ch: int,
        kernel: int = 3,
        layer_num: int = 6,
        identity: bool = False,
        light_block: bool = True,
        use_lab: bool = False,
    ):
        super().__init__()
        self.identity = identity
        layers = []
        for i in range(layer_num):
            cin = in_ch if i == 0 else mid_ch
            layers.append(
                LightConvBNAct(cin, mid_ch, kernel, use_lab=use_lab)
                if light_block
                else _conv_bn_act(cin, mid_ch, kernel, use_lab=use_lab)
            )
        self.layers = nn.ModuleList(layers)
        total = in_ch + layer_num * mid_ch
        self.aggregation_squeeze_conv = _conv_bn_act(total, out_ch // 2, 1, use_lab=use_lab)
        self.aggregation_excitation_conv = _conv_bn_act(out_ch // 2, out_ch, 1, use_lab=use_lab)

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        return self.aggregation_excitation_conv(self.aggregation_squeeze_conv(x))


class HGV2_Stage(DownsampleStage):  # noqa: N801 - PaddleClas's name
    """[depthwise 3x3/2 conv-BN] then ``block_num`` HGV2 blocks."""

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        out_ch: int,
        block_num: int,
        layer_num: int = 6,
        is_downsample: bool = True,
        light_block: bool = True,
        kernel: int = 3,
        use_lab: bool = False,
    ):
        super().__init__()
        self.downsample = (
            _conv_bn_act(in_ch, in_ch, 3, 2, groups=in_ch, use_act=False, use_lab=use_lab)
            if is_downsample
            else None
        )
        self.blocks = nn.Sequential(
            *[
                HGV2_Block(
                    in_ch if i == 0 else out_ch,
                    mid_ch,
                    out_ch,
                    kernel,
                    layer_num,
                    identity=i > 0,
                    light_block=light_block,
                    use_lab=use_lab,
                )
                for i in range(block_num)
            ]
        )


class PPHGNetV2(ConvHeadBackbone):
    """PP-HGNetV2. ``forward_features`` returns the four stage outputs (strides 4, 8, 16, 32).

    Args:
        variant: ``"B0"`` ... ``"B6"``.
        num_classes: classifier outputs (0: no classifier).
        in_chans: input channels.
        drop_rate: head dropout (PaddleClas's downscale-in-infer kind, default 0).
        use_last_conv: keep the 1x1 head conv to ``class_expand`` channels.
        class_expand: channels of that head conv.
    """

    head_names = ("last_conv", "lab", "fc")

    def __init__(
        self,
        variant: str = "B0",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        use_last_conv: bool = True,
        class_expand: int = 2048,
    ):
        super().__init__()
        if variant not in _CONFIGS:
            raise ValueError(f"PPHGNetV2 variant {variant!r} is not one of {sorted(_CONFIGS)}")
        (stem_mid, stem_out), stages, use_lab = _CONFIGS[variant]
        self.num_classes = num_classes
        self.use_lab = use_lab
        self.stem = StemBlock(in_chans, stem_mid, stem_out, use_lab=use_lab)
        self.stages = nn.ModuleList()
        self.feature_info = []
        reduction = 4
        for i, (cin, mid, cout, blocks, down, light, kernel, layers) in enumerate(stages):
            self.stages.append(
                HGV2_Stage(cin, mid, cout, blocks, layers, down, light, kernel, use_lab)
            )
            reduction *= 2 if down else 1
            self.feature_info.append(FeatureInfo(cout, reduction, f"stages.{i}"))
        self._build_head(
            stages[-1][2],
            num_classes,
            use_last_conv,
            class_expand,
            nn.ReLU(inplace=True),
            drop_rate,
            lab=LearnableAffineBlock() if use_lab else None,
        )
        init_weights_hgnet(self)

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self._run_stages(self.stem(x))


def _builder(variant: str):
    def build(**kwargs) -> PPHGNetV2:
        return PPHGNetV2(variant, **kwargs)

    build.__name__ = f"pphgnetv2_{variant.lower()}"
    build.__qualname__ = build.__name__
    build.__doc__ = f"PP-HGNetV2 {variant} (PaddleClas ``PPHGNetV2_{variant}``)."
    return register_model(f"PPHGNetV2_{variant}")(build)


pphgnetv2_b0 = _builder("B0")
pphgnetv2_b1 = _builder("B1")
pphgnetv2_b2 = _builder("B2")
pphgnetv2_b3 = _builder("B3")
pphgnetv2_b4 = _builder("B4")
pphgnetv2_b5 = _builder("B5")
pphgnetv2_b6 = _builder("B6")

_LEGENDARY = PADDLE_BASE + "legendary_models/"
_V2_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/PP-HGNetV2.md"
# Top-1 (stage 2, ImageNet-1k val at 224) from _V2_DOC. The doc publishes no top-1 for the
# stage-1 weights, and PaddleClas publishes no non-SSLD PP-HGNetV2 weights (baseline None).
_TOP1 = {"B0": 77.77, "B1": 79.18, "B2": 81.74, "B3": 82.98, "B4": 83.57, "B5": 84.75, "B6": 86.30}
# ppcls/configs/ImageNet/PPHGNetV2/PPHGNetV2_B*.yaml evaluate at resize_short 232 (bicubic,
# PIL) + crop 224; the SSLD configs that trained B4 (PPHGNetV2_B4_ssld_stage{1,2}.yaml) at 236.
_T232 = EvalTransform(224, 232, "bicubic")
_T236 = EvalTransform(224, 236, "bicubic")
# Only B4's SSLD recipe is published: teacher PPHGNet_small (SSLD weights), soft-target CE,
# stage 1 on ImageNet-1k + mined ImageNet-22k images ("ImageNet_5M"), stage 2 on ImageNet-1k.
_B4_TEACHER = "pphgnet_small_ssld"


def _cards(variant: str) -> tuple[WeightCard, WeightCard]:
    arch = f"pphgnetv2_{variant.lower()}"
    transform = _T236 if variant == "B4" else _T232
    teacher = _B4_TEACHER if variant == "B4" else None
    final = WeightCard(
        f"{arch}_ssld",
        arch,
        (f"{_LEGENDARY}PPHGNetV2_{variant}_ssld_pretrained.pdparams",),
        top1=_TOP1[variant],
        top1_source=_V2_DOC,
        teacher=teacher,
        transform=transform,
        description="SSLD stage 2: distilled on ImageNet-1k after stage 1.",
    )
    stage1 = WeightCard(
        f"{arch}_ssld_stage1",
        arch,
        (f"{_LEGENDARY}PPHGNetV2_{variant}_ssld_stage1_pretrained.pdparams",),
        top1=None,
        top1_source=_V2_DOC,
        teacher=teacher,
        transform=transform,
        description=(
            "SSLD stage 1: distilled on ImageNet-1k plus mined ImageNet-22k images. "
            "No top-1 published; PaddleClas recommends these for downstream "
            "fine-tuning (better generalisation), and loads them for "
            "PPHGNetV2_*(pretrained=True)."
        ),
    )
    return final, stage1


register_weights(*[card for v in _CONFIGS for card in _cards(v)])
