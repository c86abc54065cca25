"""Next-ViT (Li et al. 2022, arXiv 2207.05501), as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/model_zoo/nextvit.py`` (itself a port of bytedance/Next-ViT). A
convolution/transformer hybrid: Next Convolution Blocks (NCB: patch embedding, multi-head
convolutional attention = grouped 3x3 conv-BN-ReLU-1x1, BN, conv MLP) and Next Transformer
Blocks (NTB: efficient multi-head self-attention whose keys/values are average-pooled over the
*flattened* token sequence, then an MHCA branch concatenated beside it, BN, conv MLP).

Details that change the numbers:

* every BatchNorm uses Next-ViT's ``NORM_EPS`` (1e-5, which equals the default here);
* the spatial reduction of E-MHSA is a 1-D average pool of width ``sr_ratio**2`` over the
  row-major token sequence (not a 2-D pool), followed by BatchNorm1d;
* stride-2 patch embeddings average-pool 2x2 with ``ceil_mode`` and padding excluded;
* the classifier sees ``norm`` (BN) of the last block's output, pooled.

The ``_224`` and ``_384`` architectures are identical (same keys and shapes); only the
weights and the eval transform differ. The attention has no positional encoding and works at
any input size whose stride-8 token count is at least 16 (input >= 32 px).

Module names equal PaddleClas's (``stem.N``, ``features.N``, ``norm``, ``proj_head.0``).
``drop_path_rate`` and the dropouts only act in training.
"""

from __future__ import annotations

from functools import partial
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssld_zoo.models._base import Backbone, check_input, new_linear
from ssld_zoo.models.layers import NEXTVIT, ConvBNAct, make_divisible
from ssld_zoo.registry import (
    PADDLE_BASE,
    EvalTransform,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["NextViT"]

NORM_EPS = 1e-5

# size -> (blocks per stage, default drop path rate)
_CONFIGS = {
    "small": ((3, 4, 10, 3), 0.1),
    "base": ((3, 4, 20, 3), 0.2),
    "large": ((3, 4, 30, 3), 0.2),
}


def _bn2d(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=NORM_EPS, momentum=0.1)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval or when ``drop_prob`` is 0)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x / keep * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


# The stem's conv-BN-ReLU; PaddleClas pads 1 whatever the kernel (only 3x3 is used).
_conv_bn_relu = partial(ConvBNAct, padding=1, act=True, names=NEXTVIT, eps=NORM_EPS)


class PatchEmbed(nn.Module):  # not layers.ConvBNAct: each part is Identity where unused
    """Stride 2: avg-pool 2x2 + 1x1 conv + BN; channel change: 1x1 conv + BN; else identity."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        if stride == 2:
            self.avgpool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        else:
            self.avgpool = nn.Identity()
        if stride == 2 or in_ch != out_ch:
            self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
            self.norm = _bn2d(out_ch)
        else:
            self.conv = nn.Identity()
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.avgpool(x)))


class MHCA(nn.Module):  # conv-BN-ReLU then a 1x1 projection, PaddleClas's names in one class
    """Multi-head convolutional attention: grouped 3x3 (one group per head) -> BN -> ReLU -> 1x1."""

    def __init__(self, out_ch: int, head_dim: int):
        super().__init__()
        self.group_conv3x3 = nn.Conv2d(
            out_ch, out_ch, 3, 1, 1, groups=out_ch // head_dim, bias=False
        )
        self.norm = _bn2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.projection = nn.Conv2d(out_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.act(self.norm(self.group_conv3x3(x))))


class Mlp(nn.Module):
    """1x1 conv -> ReLU -> 1x1 conv, hidden width ``make_divisible(in * mlp_ratio, 32)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int | None = None,
        mlp_ratio: float = 2.0,
        drop: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        out_features = out_features or in_features
        hidden = make_divisible(in_features * mlp_ratio, 32)
        self.conv1 = nn.Conv2d(in_features, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(hidden, out_features, 1, bias=bias)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.conv2(self.drop(self.act(self.conv1(x)))))


class NCB(nn.Module):
    """Next Convolution Block."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        path_dropout: float = 0.0,
        drop: float = 0.0,
        head_dim: int = 32,
        mlp_ratio: float = 3,
    ):
        super().__init__()
        if out_ch % head_dim:
            raise ValueError(f"NCB channels {out_ch} must be a multiple of head_dim {head_dim}")
        self.patch_embed = PatchEmbed(in_ch, out_ch, stride)
        self.mhca = MHCA(out_ch, head_dim)
        self.attention_path_dropout = DropPath(path_dropout)
        self.norm = _bn2d(out_ch)
        self.mlp = Mlp(out_ch, mlp_ratio=mlp_ratio, drop=drop, bias=True)
        self.mlp_path_dropout = DropPath(path_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + self.attention_path_dropout(self.mhca(x))
        return x + self.mlp_path_dropout(self.mlp(self.norm(x)))


class E_MHSA(nn.Module):  # noqa: N801 - PaddleClas's name
    """Efficient multi-head self-attention over (B, N, C) tokens; keys and values come from
    the sequence average-pooled by ``sr_ratio**2`` (then BatchNorm1d) when ``sr_ratio > 1``."""

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        head_dim: int = 32,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        sr_ratio: int = 1,
    ):
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim if out_dim is not None else dim
        self.num_heads = dim // head_dim
        self.scale = qk_scale or head_dim**-0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, self.out_dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr_ratio = sr_ratio
        self.N_ratio = sr_ratio**2
        if sr_ratio > 1:
            self.sr = nn.AvgPool1d(self.N_ratio, self.N_ratio)
            self.norm = nn.BatchNorm1d(dim, eps=NORM_EPS, momentum=0.1)
        else:
            self.sr = self.norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h = self.num_heads
        q = self.q(x).reshape(B, N, h, C // h).transpose(1, 2)
        if self.sr is not None:
            message = (
                "Next-ViT: the input image is too small: an attention layer has fewer "
                "tokens than its pooling window"
            )
            if torch.jit.is_scripting():
                torch._assert(N >= self.N_ratio, message)
            else:
                check_input(N >= self.N_ratio, message)
            x = self.norm(self.sr(x.transpose(1, 2))).transpose(1, 2)
        k = self.k(x).reshape(B, -1, h, C // h).transpose(1, 2)
        v = self.v(x).reshape(B, -1, h, C // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, N, C)))


class NTB(nn.Module):
    """Next Transformer Block: E-MHSA on ``mix_block_ratio`` of the channels, MHCA on the rest
    (computed from the attention branch's output), concatenated, then BN + conv MLP."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        path_dropout: float,
        stride: int = 1,
        sr_ratio: int = 1,
        mlp_ratio: float = 2,
        head_dim: int = 32,
        mix_block_ratio: float = 0.75,
        attn_drop: float = 0.0,
        drop: float = 0.0,
    ):
        super().__init__()
        self.mhsa_out_channels = make_divisible(int(out_ch * mix_block_ratio), 32)
        self.mhca_out_channels = out_ch - self.mhsa_out_channels
        self.patch_embed = PatchEmbed(in_ch, self.mhsa_out_channels, stride)
        self.norm1 = _bn2d(self.mhsa_out_channels)
        self.e_mhsa = E_MHSA(
            self.mhsa_out_channels,
            head_dim=head_dim,
            sr_ratio=sr_ratio,
            attn_drop=attn_drop,
            proj_drop=drop,
        )
        self.mhsa_path_dropout = DropPath(path_dropout * mix_block_ratio)
        self.projection = PatchEmbed(self.mhsa_out_channels, self.mhca_out_channels, stride=1)
        self.mhca = MHCA(self.mhca_out_channels, head_dim=head_dim)
        self.mhca_path_dropout = DropPath(path_dropout * (1 - mix_block_ratio))
        self.norm2 = _bn2d(out_ch)
        self.mlp = Mlp(out_ch, mlp_ratio=mlp_ratio, drop=drop)
        self.mlp_path_dropout = DropPath(path_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        B, C, H, W = x.shape
        out = self.norm1(x).flatten(2).transpose(1, 2)  # b c h w -> b (h w) c
        out = self.mhsa_path_dropout(self.e_mhsa(out))
        x = x + out.transpose(1, 2).reshape(B, C, H, W)
        out = self.projection(x)
        out = out + self.mhca_path_dropout(self.mhca(out))
        x = torch.cat([x, out], dim=1)
        return x + self.mlp_path_dropout(self.mlp(self.norm2(x)))


class NextViT(Backbone):
    """Next-ViT. ``forward_stages`` returns the four stage outputs (strides 4, 8, 16, 32;
    96, 256, 512, 1024 channels), before the final ``norm`` that the classifier applies.

    Args:
        size: ``"small"``, ``"base"`` or ``"large"``.
        num_classes: classifier outputs (0: no classifier).
        in_chans: input channels.
        drop_path_rate: stochastic depth of the last block (linear from 0); defaults to the
            variant's (0.1 small, 0.2 otherwise) as PaddleClas sets it.
        attn_drop, drop: attention and MLP/projection dropout (training only).
    """

    head_names = ("norm", "proj_head")

    def __init__(
        self,
        size: str = "small",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float | None = None,
        attn_drop: float = 0.0,
        drop: float = 0.0,
        stem_chs: tuple[int, int, int] = (64, 32, 64),
        strides: tuple[int, ...] = (1, 2, 2, 2),
        sr_ratios: tuple[int, ...] = (8, 4, 2, 1),
        head_dim: int = 32,
        mix_block_ratio: float = 0.75,
    ):
        super().__init__()
        if size not in _CONFIGS:
            raise ValueError(f"NextViT size {size!r} is not one of {sorted(_CONFIGS)}")
        depths, default_dpr = _CONFIGS[size]
        dpr_max = default_dpr if drop_path_rate is None else drop_path_rate
        self.num_classes = num_classes
        stage_out = [
            [96] * depths[0],
            [192] * (depths[1] - 1) + [256],
            [384, 384, 384, 384, 512] * (depths[2] // 5),
            [768] * (depths[3] - 1) + [1024],
        ]
        stage_types = [
            [NCB] * depths[0],
            [NCB] * (depths[1] - 1) + [NTB],
            [NCB, NCB, NCB, NCB, NTB] * (depths[2] // 5),
            [NCB] * (depths[3] - 1) + [NTB],
        ]
        self.stem = nn.Sequential(
            _conv_bn_relu(in_chans, stem_chs[0], 3, 2),
            _conv_bn_relu(stem_chs[0], stem_chs[1], 3, 1),
            _conv_bn_relu(stem_chs[1], stem_chs[2], 3, 1),
            _conv_bn_relu(stem_chs[2], stem_chs[2], 3, 2),
        )
        total = sum(depths)
        # Plain Python (not torch.linspace): builds must also work on the meta device.
        dpr = [dpr_max * i / (total - 1) for i in range(total)]
        blocks, self.feature_info = [], []
        in_ch, idx, reduction = stem_chs[-1], 0, 4
        for s, n in enumerate(depths):
            for b in range(n):
                stride = 2 if (strides[s] == 2 and b == 0) else 1
                out_ch = stage_out[s][b]
                if stage_types[s][b] is NCB:
                    blocks.append(
                        NCB(
                            in_ch,
                            out_ch,
                            stride=stride,
                            path_dropout=dpr[idx + b],
                            drop=drop,
                            head_dim=head_dim,
                        )
                    )
                else:
                    blocks.append(
                        NTB(
                            in_ch,
                            out_ch,
                            path_dropout=dpr[idx + b],
                            stride=stride,
                            sr_ratio=sr_ratios[s],
                            head_dim=head_dim,
                            mix_block_ratio=mix_block_ratio,
                            attn_drop=attn_drop,
                            drop=drop,
                        )
                    )
                in_ch = out_ch
            idx += n
            reduction *= strides[s]
            self.feature_info.append(FeatureInfo(in_ch, reduction, f"features.{idx - 1}"))
        self.features = nn.Sequential(*blocks)
        self._stage_ends = [int(f.module.split(".")[1]) for f in self.feature_info]
        self.num_features = self.head_hidden_size = in_ch
        self.norm = _bn2d(in_ch)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.proj_head = nn.Sequential(
            nn.Linear(in_ch, num_classes) if num_classes else nn.Identity()
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # PaddleClas's init (matters only when training from scratch): truncated normal
        # std 0.02 cut at 2 std for Linear and Conv weights, zero biases, norms 1/0.
        for m in self.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.stem(x)
        outs: List[torch.Tensor] = []
        for i, blk in enumerate(self.features):
            x = blk(x)
            if i in self._stage_ends:
                outs.append(x)
        return outs

    def final_features(self, stages: List[torch.Tensor]) -> torch.Tensor:
        return self.norm(stages[-1])  # the final BatchNorm, before pooling

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.proj_head(x)

    def get_classifier(self) -> nn.Module:
        return self.proj_head[0]

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.proj_head = nn.Sequential(new_linear(nn.Linear(self.num_features, 1), num_classes))


def _builder(size: str, res: int):
    def build(**kwargs) -> NextViT:
        return NextViT(size, **kwargs)

    build.__name__ = f"nextvit_{size}_{res}"
    build.__qualname__ = build.__name__
    build.__doc__ = (
        f"Next-ViT {size} (PaddleClas ``NextViT_{size}_{res}``; the architecture "
        f"is the same at 224 and 384, the weights differ)."
    )
    return register_model(f"NextViT_{size}_{res}")(build)


nextvit_small_224 = _builder("small", 224)
nextvit_base_224 = _builder("base", 224)
nextvit_large_224 = _builder("large", 224)
nextvit_small_384 = _builder("small", 384)
nextvit_base_384 = _builder("base", 384)
nextvit_large_384 = _builder("large", 384)

_NEXTVIT_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/NextViT.md"
# (size, res) -> (top-1 of the plain weights, top-1 of the _ssld weights), from _NEXTVIT_DOC.
_TOP1 = {
    ("small", 224): (82.48, 84.72),
    ("base", 224): (83.24, 85.00),
    ("large", 224): (83.63, 85.36),
    ("small", 384): (84.01, 85.97),
    ("base", 384): (84.65, 86.34),
    ("large", 384): (84.92, 86.54),
}
# ppcls/configs/ImageNet/NextViT/NextViT_*_224.yaml: resize_short 256 bicubic + crop 224;
# *_384.yaml: resize_short 384 bicubic + crop 384 (no border cropped).
_TRANSFORMS = {224: EvalTransform(224, 256, "bicubic"), 384: EvalTransform(384, 384, "bicubic")}
_CONVERTED = "Converted by PaddleClas from the official bytedance/Next-ViT release."
_SSLD_NOTE = (
    "Not distilled with PaddleClas's SSLD: per the PaddleClas doc these '_ssld' "
    "weights were trained on an SSLD-like mined dataset (Next-ViT's large-scale "
    "semi-supervised pre-training). " + _CONVERTED
)


def _cards(size: str, res: int) -> tuple[WeightCard, WeightCard]:
    arch = f"nextvit_{size}_{res}"
    base_top1, ssld_top1 = _TOP1[(size, res)]
    stem = f"{PADDLE_BASE}NextViT_{size}_{res}"
    plain = WeightCard(
        arch,
        arch,
        (f"{stem}_pretrained.pdparams",),
        top1=base_top1,
        top1_source=_NEXTVIT_DOC,
        transform=_TRANSFORMS[res],
        description=_CONVERTED,
    )
    ssld = WeightCard(
        f"{arch}_ssld",
        arch,
        (f"{stem}_ssld_pretrained.pdparams",),
        top1=ssld_top1,
        baseline_top1=base_top1,
        top1_source=_NEXTVIT_DOC,
        teacher=None,
        transform=_TRANSFORMS[res],
        description=_SSLD_NOTE,
    )
    return plain, ssld


register_weights(*[c for size in _CONFIGS for res in (224, 384) for c in _cards(size, res)])
