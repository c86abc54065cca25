"""PP-LCNetV2, as PaddleClas 2.6.0 builds it.

``ppcls/arch/backbone/legendary_models/pp_lcnet_v2.py``. PP-LCNet's successor: ReLU
throughout; in the last two stages the depthwise conv is a re-parameterisable sum of
5x5, 3x3 (and 1x1 when stride 1) depthwise conv-BN branches followed by one activation;
stage 3 splits its pointwise conv in two (squeeze to half the output, then expand) and has
squeeze-excite (ReLU, *real* sigmoid); stage 4 has identity shortcuts; the head is global
pooling -> 1x1 conv to 1280 (no BN, no bias) -> ReLU -> ``downscale_in_infer`` dropout (x0.8
at inference) -> Linear.

PaddleClas builds the training structure by default: the branches (``dw_conv_list``) compute
the output, and the fused ``dw_conv`` (conv with bias) exists in the state dict unused.
This port does the same, so ``.pdparams`` keys map 1:1; :meth:`PPLCNetV2.re_parameterize`
fuses the branches into ``dw_conv`` for faster inference, as Paddle's ``re_parameterize``.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssld_zoo.models._base import ConvHeadBackbone
from ssld_zoo.models.layers import ConvBNAct, make_divisible
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["PPLCNetV2"]

# stage -> (in channels, depthwise kernel, split pointwise, re-parameterisable depthwise,
#           squeeze-excite, shortcut); every stage doubles the channels.
_NET_CONFIG = (
    (64, 3, False, False, False, False),
    (128, 3, False, False, False, False),
    (256, 5, True, True, True, False),
    (512, 5, False, True, False, True),
)


def _create_act(name: str) -> nn.Module:
    # PaddleClas also accepts "prelu", which has weights of its own: not ported.
    acts = {
        "relu": nn.ReLU,
        "hardswish": nn.Hardswish,
        "relu6": nn.ReLU6,
        "leaky_relu": lambda inplace: nn.LeakyReLU(0.1, inplace=inplace),
    }
    if name not in acts:
        raise ValueError(f"activation {name!r} is not supported; expected one of {sorted(acts)}")
    # In place: every activation here follows a BN, conv or sum whose output nothing else reads.
    return acts[name](inplace=True)


class SEModule(nn.Module):
    """Squeeze-excite: pool -> 1x1 conv -> act -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 4, act: str = "relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.act = _create_act(act)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)
        # PaddleClas names it "hardsigmoid" but it is nn.Sigmoid.
        self.hardsigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.act(self.conv1(x.mean((2, 3), keepdim=True)))
        return x * self.hardsigmoid(self.conv2(s))


class RepDepthwiseSeparable(nn.Module):
    """depthwise (single conv-BN-ReLU, or a sum of branches then act) -> [SE] -> pointwise
    (one conv, or two when split) -> [+ input]."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        dw_size: int = 3,
        split_pw: bool = False,
        use_rep: bool = False,
        use_se: bool = False,
        use_shortcut: bool = False,
        act: str = "relu",
    ):
        super().__init__()
        self.dw_size = dw_size
        self.use_rep = use_rep
        self.is_repped = False
        self.use_shortcut = use_shortcut and stride == 1 and in_ch == out_ch
        if use_rep:
            # Kernels dw_size, dw_size - 2, ..., 1; the 1x1 branch only at stride 1.
            self.dw_conv_list = nn.ModuleList(
                ConvBNAct(in_ch, in_ch, k, stride, groups=in_ch)
                for k in range(dw_size, 0, -2)
                if not (k == 1 and stride != 1)
            )
            # The re-parameterised (inference) form, filled by re_parameterize(); it is not
            # trained (the branches are), so it asks for no gradient: DDP needs no
            # find_unused_parameters.
            self.dw_conv = nn.Conv2d(
                in_ch, in_ch, dw_size, stride, (dw_size - 1) // 2, groups=in_ch
            ).requires_grad_(False)
        else:
            self.dw_conv_list = None
            # PaddleClas leaves this one at its ConvBNLayer's default activation, ReLU.
            self.dw_conv = ConvBNAct(in_ch, in_ch, dw_size, stride, groups=in_ch, act=True)
        self.act = _create_act(act)
        self.se = SEModule(in_ch, act=act) if use_se else None
        if split_pw:
            mid = int(out_ch * 0.5)
            self.pw_conv_1 = ConvBNAct(in_ch, mid, 1, 1, act=_create_act(act))
            self.pw_conv_2 = ConvBNAct(mid, out_ch, 1, 1, act=_create_act(act))
            self.pw_conv = None
        else:
            self.pw_conv = ConvBNAct(in_ch, out_ch, 1, 1, act=_create_act(act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        if self.dw_conv_list is None:  # no re-parameterisable branches
            x = self.dw_conv(x)
        elif self.is_repped:
            x = self.act(self.dw_conv(x))
        else:
            y: Optional[torch.Tensor] = None
            for branch in self.dw_conv_list:
                z = branch(x)
                y = z if y is None else y + z
            assert y is not None
            x = self.act(y)
        if self.se is not None:
            x = self.se(x)
        if self.pw_conv is None:
            x = self.pw_conv_2(self.pw_conv_1(x))
        else:
            x = self.pw_conv(x)
        return x + identity if self.use_shortcut else x

    @torch.no_grad()
    def re_parameterize(self) -> None:
        """Fuse the BN-folded branches, zero-padded to ``dw_size``, into ``dw_conv``."""
        if not self.use_rep:
            return
        kernel = torch.zeros_like(self.dw_conv.weight)
        bias = torch.zeros_like(self.dw_conv.bias)
        for branch in self.dw_conv_list:
            bn = branch.bn
            std = (bn.running_var + bn.eps).sqrt()
            w = branch.conv.weight * (bn.weight / std).reshape(-1, 1, 1, 1)
            pad = (self.dw_size - w.shape[-1]) // 2
            kernel += F.pad(w, [pad] * 4)
            bias += bn.bias - bn.running_mean * bn.weight / std
        self.dw_conv.weight.copy_(kernel)
        self.dw_conv.bias.copy_(bias)
        self.is_repped = True


class PPLCNetV2(ConvHeadBackbone):
    """PP-LCNetV2 at width ``scale`` with ``depths`` blocks per stage. ``forward_features``
    returns the four stage outputs ``stages.0`` .. ``stages.3`` (strides 4, 8, 16, 32)."""

    head_names = ("avg_pool", "last_conv", "act", "dropout", "fc")

    def __init__(
        self,
        scale: float,
        depths: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        use_last_conv: bool = True,
        class_expand: int = 1280,
        act: str = "relu",
    ):
        super().__init__()
        if len(depths) != 4:
            raise ValueError(f"depths needs 4 entries (one per stage), got {list(depths)}")
        self.scale = scale
        self.num_classes = num_classes
        stem_ch = make_divisible(32 * scale)
        self.stem = nn.Sequential(
            ConvBNAct(in_chans, stem_ch, 3, 2, act=_create_act(act)),
            RepDepthwiseSeparable(stem_ch, make_divisible(64 * scale), 1, 3, act=act),
        )
        self.stages = nn.ModuleList()
        self.feature_info = []
        reduction = 2
        for i, ((in_c, k, split_pw, use_rep, use_se, shortcut), n) in enumerate(
            zip(_NET_CONFIG, depths)
        ):
            out_ch = make_divisible(in_c * 2 * scale)
            self.stages.append(
                nn.Sequential(
                    *[
                        RepDepthwiseSeparable(
                            make_divisible((in_c if j == 0 else in_c * 2) * scale),
                            out_ch,
                            2 if j == 0 else 1,
                            k,
                            split_pw,
                            use_rep,
                            use_se,
                            shortcut,
                            act,
                        )
                        for j in range(n)
                    ]
                )
            )
            reduction *= 2
            self.feature_info.append(FeatureInfo(out_ch, reduction, f"stages.{i}"))
        self._build_head(
            self.feature_info[-1].channels,
            num_classes,
            use_last_conv,
            class_expand,
            _create_act(act),
            drop_rate,
        )

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self._run_stages(self.stem(x))

    def re_parameterize(self) -> "PPLCNetV2":
        """Fuse every multi-branch depthwise conv into one (inference speed-up, same outputs
        to float rounding). Call in eval mode after loading weights; returns ``self``.

        Training after fusing would train the fused conv only; the branches' weights stay
        in the state dict, so the saved keys still match PaddleClas's.
        """
        for m in self.modules():
            if isinstance(m, RepDepthwiseSeparable):
                m.re_parameterize()
        return self


@register_model("PPLCNetV2_small")
def pplcnetv2_small(**kwargs) -> PPLCNetV2:
    return PPLCNetV2(0.75, (2, 2, 4, 2), **kwargs)


@register_model("PPLCNetV2_base")
def pplcnetv2_base(**kwargs) -> PPLCNetV2:
    return PPLCNetV2(1.0, (2, 2, 6, 2), **kwargs)


@register_model("PPLCNetV2_large")
def pplcnetv2_large(**kwargs) -> PPLCNetV2:
    return PPLCNetV2(1.25, (2, 2, 8, 2), **kwargs)


_LEGENDARY = PADDLE_BASE + "legendary_models/"
_LCNETV2_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/PP-LCNetV2.md"

register_weights(
    WeightCard(
        "pplcnetv2_small",
        "pplcnetv2_small",
        (_LEGENDARY + "PPLCNetV2_small_pretrained.pdparams",),
        top1=None,
        top1_source=f"not published in {_LCNETV2_DOC}",
    ),
    WeightCard(
        "pplcnetv2_base",
        "pplcnetv2_base",
        (_LEGENDARY + "PPLCNetV2_base_pretrained.pdparams",),
        top1=77.04,
        top1_source=SSLD_DOC,
    ),
    WeightCard(
        "pplcnetv2_large",
        "pplcnetv2_large",
        (_LEGENDARY + "PPLCNetV2_large_pretrained.pdparams",),
        top1=None,
        top1_source=f"not published in {_LCNETV2_DOC}",
    ),
    WeightCard(
        "pplcnetv2_base_ssld",
        "pplcnetv2_base",
        (_LEGENDARY + "PPLCNetV2_base_ssld_pretrained.pdparams",),
        top1=80.10,
        baseline_top1=77.04,
        top1_source=SSLD_DOC,
        description="PP-LCNetV2.md gives 80.07 for the same file. Teacher not stated "
        "in PaddleClas's docs or configs.",
    ),
)
