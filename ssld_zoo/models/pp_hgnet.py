"""PP-HGNet (PaddleClas's "High Performance GPU Net"), as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/legendary_models/pp_hgnet.py``. A VoVNet-style network: each HG block
runs a chain of 3x3 conv-BN-ReLU layers, concatenates the block input with every layer's
output, aggregates them with a 1x1 conv and gates the result with an effective squeeze-excite
(ESE: global pool, 1x1 conv with bias, sigmoid). Stages 2-4 start with a depthwise 3x3
stride-2 conv-BN without activation (the "learnable down-sampling" layer). The head is global
average pool, a 1x1 conv to 2048 channels (no bias) + ReLU, dropout, and the classifier.

What differs from a naive port: PaddleClas's dropout is ``mode="downscale_in_infer"``, which
multiplies by ``1 - p`` at inference. PPHGNet_base uses p = 0.2, so its head features are
scaled by 0.8 at eval; a ``nn.Dropout`` port would give logits 1.25x too large (same argmax,
wrong probabilities). Module names equal PaddleClas's.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from ssld_zoo.models._base import ConvHeadBackbone
from ssld_zoo.models.layers import (
    ConcatBlock,
    ConvBNAct,
    DownsampleStage,
    DownscaleInInferDropout,
    init_weights_hgnet,
)
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    EvalTransform,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["PPHGNet", "DownscaleInInferDropout"]

# name -> (stem channels, per stage (in, mid, out, blocks, downsample), layers per block, dropout)
_CONFIGS = {
    "tiny": (
        (48, 48, 96),
        (
            (96, 96, 224, 1, False),
            (224, 128, 448, 1, True),
            (448, 160, 512, 2, True),
            (512, 192, 768, 1, True),
        ),
        5,
        0.0,
    ),
    "small": (
        (64, 64, 128),
        (
            (128, 128, 256, 1, False),
            (256, 160, 512, 1, True),
            (512, 192, 768, 2, True),
            (768, 224, 1024, 1, True),
        ),
        6,
        0.0,
    ),
    "base": (
        (96, 96, 160),
        (
            (160, 192, 320, 1, False),
            (320, 224, 640, 2, True),
            (640, 256, 960, 3, True),
            (960, 288, 1280, 2, True),
        ),
        7,
        0.2,
    ),
}


class ESEModule(nn.Module):
    """Effective squeeze-excite: x * sigmoid(conv1x1(avgpool(x)))."""

    def __init__(self, channels: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(channels, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.conv(self.avg_pool(x)))


class HG_Block(ConcatBlock):  # noqa: N801 - PaddleClas's name
    """``layer_num`` chained 3x3 convs; input and all outputs concatenated, 1x1, ESE."""

    def __init__(
        self, in_ch: int, mid_ch: int, out_ch: int, layer_num: int, identity: bool = False
    ):
        super().__init__()
        self.identity = identity
        self.layers = nn.ModuleList(
            [ConvBNAct(in_ch if i == 0 else mid_ch, mid_ch, 3, act=True) for i in range(layer_num)]
        )
        self.aggregation_conv = ConvBNAct(in_ch + layer_num * mid_ch, out_ch, 1, act=True)
        self.att = ESEModule(out_ch)

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        return self.att(self.aggregation_conv(x))


class HG_Stage(DownsampleStage):  # noqa: N801 - PaddleClas's name
    """[depthwise 3x3 stride-2 conv-BN] then ``block_num`` HG blocks (residual after the first)."""

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        out_ch: int,
        block_num: int,
        layer_num: int,
        downsample: bool = True,
    ):
        super().__init__()
        self.downsample = ConvBNAct(in_ch, in_ch, 3, 2, groups=in_ch) if downsample else None
        self.blocks = nn.Sequential(
            *[
                HG_Block(in_ch if i == 0 else out_ch, mid_ch, out_ch, layer_num, identity=i > 0)
                for i in range(block_num)
            ]
        )


class PPHGNet(ConvHeadBackbone):
    """PP-HGNet. ``forward_features`` returns the four stage outputs (strides 4, 8, 16, 32).

    Args:
        variant: ``"tiny"``, ``"small"`` or ``"base"``.
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features
            after the 2048-channel head conv).
        in_chans: input channels.
        drop_rate: head dropout (PaddleClas's downscale-in-infer kind); defaults to the
            variant's (0.2 for base, else 0).
        use_last_conv: keep PaddleClas's 1x1 head conv to ``class_expand`` channels.
        class_expand: channels of that head conv.
    """

    head_names = ("last_conv", "fc")

    def __init__(
        self,
        variant: str = "tiny",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        use_last_conv: bool = True,
        class_expand: int = 2048,
    ):
        super().__init__()
        if variant not in _CONFIGS:
            raise ValueError(f"PPHGNet variant {variant!r} is not one of {sorted(_CONFIGS)}")
        stem_chs, stages, layer_num, default_drop = _CONFIGS[variant]
        self.num_classes = num_classes
        self.use_last_conv = use_last_conv
        self.class_expand = class_expand
        chs = (in_chans,) + stem_chs
        self.stem = nn.Sequential(
            *[
                ConvBNAct(chs[i], chs[i + 1], 3, 2 if i == 0 else 1, act=True)
                for i in range(len(stem_chs))
            ]
        )
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.stages = nn.ModuleList()
        self.feature_info = []
        reduction = 4
        for i, (cin, mid, cout, blocks, down) in enumerate(stages):
            self.stages.append(HG_Stage(cin, mid, cout, blocks, layer_num, down))
            reduction *= 2 if down else 1
            self.feature_info.append(FeatureInfo(cout, reduction, f"stages.{i}"))
        self._build_head(
            stages[-1][2],
            num_classes,
            use_last_conv,
            class_expand,
            nn.ReLU(inplace=True),
            default_drop if drop_rate is None else drop_rate,
        )
        init_weights_hgnet(self)

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self._run_stages(self.pool(self.stem(x)))


@register_model("PPHGNet_tiny")
def pphgnet_tiny(**kwargs) -> PPHGNet:
    """PP-HGNet tiny (PaddleClas ``PPHGNet_tiny``)."""
    return PPHGNet("tiny", **kwargs)


# Parity at 128 (random batch 131): the big variants cost minutes per run at 224 on CI CPUs.
@register_model("PPHGNet_small")
def pphgnet_small(**kwargs) -> PPHGNet:
    """PP-HGNet small (PaddleClas ``PPHGNet_small``)."""
    return PPHGNet("small", **kwargs)


@register_model("PPHGNet_base")
def pphgnet_base(**kwargs) -> PPHGNet:
    """PP-HGNet base (PaddleClas ``PPHGNet_base``; head dropout 0.2, downscale-in-infer)."""
    return PPHGNet("base", **kwargs)


_LEGENDARY = PADDLE_BASE + "legendary_models/"
_HGNET_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/PP-HGNet.md"
# Eval transforms of ppcls/configs/ImageNet/PPHGNet/PPHGNet_{tiny,small,base}.yaml:
# resize_short 232 (tiny) / 236 (small, base), bicubic (PIL), centre crop 224.
_T232 = EvalTransform(224, 232, "bicubic")
_T236 = EvalTransform(224, 236, "bicubic")
_SSLD_NOTE = (
    "SSLD distillation; PaddleClas does not publish the teacher or the unlabeled set for PP-HGNet."
)

register_weights(
    WeightCard(
        "pphgnet_tiny",
        "pphgnet_tiny",
        (_LEGENDARY + "PPHGNet_tiny_pretrained.pdparams",),
        top1=79.83,
        top1_source=_HGNET_DOC,
        transform=_T232,
    ),
    WeightCard(
        "pphgnet_tiny_ssld",
        "pphgnet_tiny",
        (_LEGENDARY + "PPHGNet_tiny_ssld_pretrained.pdparams",),
        top1=81.95,
        baseline_top1=79.83,
        top1_source=f"{_HGNET_DOC}; {SSLD_DOC}",
        transform=_T232,
        description=_SSLD_NOTE,
    ),
    WeightCard(
        "pphgnet_small",
        "pphgnet_small",
        (_LEGENDARY + "PPHGNet_small_pretrained.pdparams",),
        top1=81.51,
        top1_source=_HGNET_DOC,
        transform=_T236,
    ),
    WeightCard(
        "pphgnet_small_ssld",
        "pphgnet_small",
        (_LEGENDARY + "PPHGNet_small_ssld_pretrained.pdparams",),
        top1=83.82,
        baseline_top1=81.51,
        top1_source=f"{_HGNET_DOC}; {SSLD_DOC}",
        transform=_T236,
        description=_SSLD_NOTE,
    ),
    # PaddleClas publishes only the SSLD weights of PPHGNet_base (its MODEL_URLS entry is
    # empty; the base builder even defaults to use_ssld=True).
    WeightCard(
        "pphgnet_base_ssld",
        "pphgnet_base",
        (_LEGENDARY + "PPHGNet_base_ssld_pretrained.pdparams",),
        top1=85.00,
        baseline_top1=None,
        top1_source=f"{_HGNET_DOC}; {SSLD_DOC}",
        transform=_T236,
        description=_SSLD_NOTE,
    ),
)
