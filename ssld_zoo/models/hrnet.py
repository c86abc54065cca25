"""HRNet for classification (Wang et al. 2019, "HRNet_W*_C") and SE_HRNet, as PaddleClas 2.6.0
builds them.

``ppcls/arch/backbone/legendary_models/hrnet.py``. Four parallel branches of widths W, 2W, 4W,
8W at strides 4, 8, 16, 32, exchanging information after every module: a higher-resolution
branch reaches a lower one through chained stride-2 3x3 conv-BNs (ReLU between them, none after
the last), a lower one reaches a higher one through a 1x1 conv-BN and *nearest* upsampling; the
sum is ReLU'd. Stages 2/3/4 hold 1/4/3 modules of four BasicBlocks per branch. The classification
head turns each branch into 128/256/512/1024 channels with a bottleneck, merges them from high to
low resolution with stride-2 3x3 conv-BNs, then 1x1 conv to 2048, average-pools and applies ``fc``.

SE_HRNet puts a squeeze-excite on every residual block: two Linear layers (reduction 16, plain
floor), ReLU between, a real sigmoid gate.

``forward_features`` gives the four branch outputs of the last stage (``st4``), which are what
dense-prediction heads use; the head's ``last_cls`` bottlenecks are not returned.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssld_zoo.models._base import PoolLinearBackbone, check_input
from ssld_zoo.models._groups import matcher_from_units
from ssld_zoo.models.layers import ConvBNAct
from ssld_zoo.registry import (
    PADDLE_BASE,
    SSLD_DOC,
    FeatureInfo,
    WeightCard,
    register_model,
    register_weights,
)

__all__ = ["HRNet"]


class SELayer(nn.Module):
    """Squeeze-excite with Linear layers: pool -> fc (C -> C//16) -> ReLU -> fc -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        mid = int(channels / reduction)  # PaddleClas: int(num_channels / reduction_ratio)
        self.fc_squeeze = nn.Linear(channels, mid)
        self.relu = nn.ReLU(inplace=True)
        self.fc_excitation = nn.Linear(mid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.mean(x, dim=(2, 3))
        s = torch.sigmoid(self.fc_excitation(self.relu(self.fc_squeeze(s))))
        return x * s[:, :, None, None]


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels), [SE], plus a 1x1 conv-BN shortcut when ``downsample``."""

    def __init__(self, in_ch: int, width: int, has_se: bool, downsample: bool):
        super().__init__()
        self.conv1 = ConvBNAct(in_ch, width, 1, act=True)
        self.conv2 = ConvBNAct(width, width, 3, act=True)
        self.conv3 = ConvBNAct(width, width * 4, 1)
        self.conv_down = ConvBNAct(in_ch, width * 4, 1) if downsample else None
        self.se = SELayer(width * 4) if has_se else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        if self.se is not None:
            y = self.se(y)
        # y is a fresh BN/SE output that backward does not need: adding in place is safe.
        y += x if self.conv_down is None else self.conv_down(x)
        return self.relu(y)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BNs, [SE], identity shortcut, ReLU."""

    def __init__(self, channels: int, has_se: bool):
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3, act=True)
        self.conv2 = ConvBNAct(channels, channels, 3)
        self.se = SELayer(channels) if has_se else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        if self.se is not None:
            y = self.se(y)
        y += x
        return self.relu(y)


class FuseLayers(nn.Module):
    """Exchange between branches: output i = ReLU(sum over j of branch j resampled to i).

    ``residual_func_list`` is flat, in PaddleClas's order: for each output i, for each input
    j != i, either one 1x1 conv (j > i, then upsampled) or i - j stride-2 3x3 convs (j < i)."""

    def __init__(self, channels: list[int]):
        super().__init__()
        self.channels = list(channels)
        layers = []
        for i, out_ch in enumerate(channels):
            for j, in_ch in enumerate(channels):
                if j > i:
                    layers.append(ConvBNAct(in_ch, out_ch, 1))
                elif j < i:
                    for k in range(i - j):
                        last = k == i - j - 1
                        # Intermediate steps keep branch j's width and are ReLU'd.
                        layers.append(
                            ConvBNAct(in_ch, out_ch if last else in_ch, 3, 2, act=not last)
                        )
        self.residual_func_list = nn.ModuleList(layers)
        self.relu = nn.ReLU(inplace=True)
        # What each layer of the flat list does, so forward can walk it in one pass (as
        # TorchScript requires): output index, input index, whether the layer starts a chain
        # from input j / ends one, and the upsampling factor at the end of a 1x1 (j > i).
        self._dst, self._src, self._starts, self._ends, self._scale = [], [], [], [], []
        for i in range(len(channels)):
            for j in range(len(channels)):
                steps = 1 if j > i else i - j if j < i else 0
                for k in range(steps):
                    self._dst.append(i)
                    self._src.append(j)
                    self._starts.append(k == 0)
                    self._ends.append(k == steps - 1)
                    self._scale.append(float(2 ** (j - i)) if j > i else 1.0)

    def keep_outputs(self, outputs: List[int]) -> None:
        """Drop the layers that make outputs not in ``outputs`` (a feature pyramid that does
        not return them); those outputs then pass their input through unchanged."""
        keep = [k for k, i in enumerate(self._dst) if i in outputs]
        self.residual_func_list = nn.ModuleList([self.residual_func_list[k] for k in keep])
        for name in ("_dst", "_src", "_starts", "_ends", "_scale"):
            setattr(self, name, [getattr(self, name)[k] for k in keep])

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        # Output i = x[i] + the resampled branches j in increasing j (PaddleClas's order).
        sums: List[torch.Tensor] = []
        for i in range(len(self.channels)):
            sums.append(x[i])
        started = [False] * len(self.channels)
        y = x[0]
        for k, layer in enumerate(self.residual_func_list):
            i = self._dst[k]
            y = layer(x[self._src[k]] if self._starts[k] else y)
            if self._ends[k]:
                if self._scale[k] != 1.0:
                    y = F.interpolate(y, scale_factor=self._scale[k], mode="nearest")
                # The first sum is a new tensor (x[i] is read again for the other outputs);
                # later ones add into it in place.
                if started[i]:
                    sums[i] += y
                else:
                    sums[i] = x[i] + y
                    started[i] = True
        outs: List[torch.Tensor] = []
        for i in range(len(self.channels)):
            outs.append(self.relu(sums[i]) if started[i] else sums[i])
        return outs


class HighResolutionModule(nn.Module):
    """Four BasicBlocks on every branch, then :class:`FuseLayers`."""

    def __init__(self, channels: list[int], has_se: bool):
        super().__init__()
        self.basic_block_list = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, has_se) for _ in range(4)]) for c in channels
        )
        self.fuse_func = FuseLayers(channels)

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        return self.fuse_func([blocks(x[i]) for i, blocks in enumerate(self.basic_block_list)])


class Stage(nn.Module):
    """``num_modules`` :class:`HighResolutionModule` in a row; list of branches in and out."""

    def __init__(self, num_modules: int, channels: list[int], has_se: bool):
        super().__init__()
        self.stage_func_list = nn.ModuleList(
            HighResolutionModule(channels, has_se) for _ in range(num_modules)
        )

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        for module in self.stage_func_list:
            x = module(x)
        return x


class LastClsOut(nn.Module):
    """One downsampling bottleneck per branch (widths 32/64/128/256 -> x4 channels)."""

    def __init__(self, channels: list[int], has_se: bool, widths: tuple[int, ...]):
        super().__init__()
        self.func_list = nn.ModuleList(
            BottleneckBlock(c, w, has_se, downsample=True) for c, w in zip(channels, widths)
        )

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        return [f(x[i]) for i, f in enumerate(self.func_list)]


class HRNet(PoolLinearBackbone):
    """HRNet_W<width>_C. ``forward_stages`` returns the four branches of ``st4`` (channels
    W, 2W, 4W, 8W at strides 4, 8, 16, 32).

    ``feature_info[i].module`` is ``"st4#i"``: sub-module ``st4`` returns the list of branches
    and ``#i`` picks branch i of it (in PaddleClas too, which has the same ``st4``).

    The branches only line up when every stride-2 step halves exactly: the input's height and
    width must be multiples of 32 (or 1-3 pixels less, which round up to the same sizes);
    PaddleClas has the same limit.
    """

    head_names = ("last_cls", "cls_head_conv_list", "conv_last", "fc")
    # Parity tests must not feed it an odd size (see above).
    fixed_input_size = True

    def __init__(
        self, width: int = 18, has_se: bool = False, num_classes: int = 1000, in_chans: int = 3
    ):
        super().__init__()
        self.width = width
        self.has_se = has_se
        self.num_classes = num_classes
        channels = [width, width * 2, width * 4, width * 8]
        self.conv_layer1_1 = ConvBNAct(in_chans, 64, 3, 2, act=True)
        self.conv_layer1_2 = ConvBNAct(64, 64, 3, 2, act=True)
        self.layer1 = nn.Sequential(
            *[
                BottleneckBlock(64 if i == 0 else 256, 64, has_se, downsample=(i == 0))
                for i in range(4)
            ]
        )
        self.conv_tr1_1 = ConvBNAct(256, width, 3, act=True)
        self.conv_tr1_2 = ConvBNAct(256, width * 2, 3, 2, act=True)
        self.st2 = Stage(1, channels[:2], has_se)
        self.conv_tr2 = ConvBNAct(width * 2, width * 4, 3, 2, act=True)
        self.st3 = Stage(4, channels[:3], has_se)
        self.conv_tr3 = ConvBNAct(width * 4, width * 8, 3, 2, act=True)
        self.st4 = Stage(3, channels, has_se)
        self.feature_info = [FeatureInfo(c, 4 * 2**i, f"st4#{i}") for i, c in enumerate(channels)]

        head_widths = (32, 64, 128, 256)
        self.last_cls = LastClsOut(channels, has_se, head_widths)
        self.cls_head_conv_list = nn.ModuleList(
            ConvBNAct(w * 4, out, 3, 2, act=True)
            for w, out in zip(head_widths[:3], (256, 512, 1024))
        )
        self.conv_last = ConvBNAct(1024, 2048, 1, act=True)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.head_hidden_size = 2048
        self.fc = nn.Linear(2048, num_classes) if num_classes else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        _check_input_size(x)
        x = self.layer1(self.conv_layer1_2(self.conv_layer1_1(x)))
        xs = self.st2([self.conv_tr1_1(x), self.conv_tr1_2(x)])
        xs = self.st3([xs[0], xs[1], self.conv_tr2(xs[-1])])
        return self.st4([xs[0], xs[1], xs[2], self.conv_tr3(xs[-1])])

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """timm's groups (as timm's own HRNet): the two stem convs; then stage 1 (``layer1``)
        and each exchange stage with the transition convs that feed it. Fine: one group per
        block of those (``layer1.<i>``, ``st<k>.stage_func_list.<i>``, a transition conv).
        Every output branch comes from ``st4``, so these stages are not the four
        ``feature_info`` entries (the downstream stage layout refuses HRNet)."""
        stages = [
            ["layer1"],
            ["conv_tr1_1", "conv_tr1_2", "st2"],
            ["conv_tr2", "st3"],
            ["conv_tr3", "st4"],
        ]
        if not coarse:
            stages = [[f"layer1.{i}" for i in range(len(self.layer1))]] + [
                [
                    u
                    for m in units
                    for u in (
                        [m]
                        if m.startswith("conv_tr")
                        else [
                            f"{m}.stage_func_list.{i}"
                            for i in range(len(getattr(self, m).stage_func_list))
                        ]
                    )
                ]
                for units in stages[1:]
            ]
        return matcher_from_units(["conv_layer1_1", "conv_layer1_2"], stages, coarse)

    def _truncate(self, picked: List[int]) -> None:
        # Every branch comes out of st4: only the last exchange's layers that make the
        # branches not picked can go (those branches then pass through unfused).
        self.st4.stage_func_list[-1].fuse_func.keep_outputs(picked)

    def final_features(self, stages: List[torch.Tensor]) -> torch.Tensor:
        # The classifier's incremental path: every branch downsampled and summed into the
        # stride-32 one, then a 1x1 conv to 2048 channels (timm's forward_features too).
        xs = self.last_cls(stages)
        y = xs[0]
        for i, conv in enumerate(self.cls_head_conv_list):
            y = xs[i + 1] + conv(y)
        return self.conv_last(y)


def _check_input_size(x: torch.Tensor) -> None:
    # Stride-2 convs give ceil(n / 2); the stride-4 branch must be 8x the stride-32 one.
    for n in (x.shape[2], x.shape[3]):
        ok = (n + 3) // 4 == 8 * ((n + 31) // 32)
        message = (
            "HRNet needs input height and width that are multiples of 32 (e.g. 224): "
            "the branches' resolutions would not line up for the fusion layers"
        )
        if torch.jit.is_scripting():
            torch._assert(ok, message)
        else:
            check_input(ok, message)


def _hrnet(width: int, has_se: bool = False, **kwargs) -> HRNet:
    return HRNet(width, has_se=has_se, **kwargs)


@register_model("HRNet_W18_C")
def hrnet_w18_c(**kwargs) -> HRNet:
    """HRNet_W18_C (21.3 M parameters)."""
    return _hrnet(18, **kwargs)


@register_model("HRNet_W30_C")
def hrnet_w30_c(**kwargs) -> HRNet:
    """HRNet_W30_C (37.7 M parameters)."""
    return _hrnet(30, **kwargs)


@register_model("HRNet_W32_C")
def hrnet_w32_c(**kwargs) -> HRNet:
    """HRNet_W32_C (41.2 M parameters)."""
    return _hrnet(32, **kwargs)


@register_model("HRNet_W40_C")
def hrnet_w40_c(**kwargs) -> HRNet:
    """HRNet_W40_C (57.6 M parameters)."""
    return _hrnet(40, **kwargs)


@register_model("HRNet_W44_C")
def hrnet_w44_c(**kwargs) -> HRNet:
    """HRNet_W44_C (67.1 M parameters)."""
    return _hrnet(44, **kwargs)


@register_model("HRNet_W48_C")
def hrnet_w48_c(**kwargs) -> HRNet:
    """HRNet_W48_C (77.5 M parameters)."""
    return _hrnet(48, **kwargs)


@register_model("HRNet_W64_C")
def hrnet_w64_c(**kwargs) -> HRNet:
    """HRNet_W64_C (128.1 M parameters)."""
    return _hrnet(64, **kwargs)


@register_model("SE_HRNet_W64_C")
def se_hrnet_w64_c(**kwargs) -> HRNet:
    """SE_HRNet_W64_C: HRNet_W64_C with squeeze-excite in every block (129.0 M parameters)."""
    return _hrnet(64, has_se=True, **kwargs)


_LEGENDARY = PADDLE_BASE + "legendary_models/"
# Per-model numbers: top-1 column of the HRNet table (0.769 ... 0.847).
_HRNET_DOC = "PaddleClas docs/zh_CN/models/ImageNet1k/HRNet.md"
_NO_TEACHER = "SSLD student; PaddleClas does not document its teacher."


def _card(
    arch: str,
    paddle: str,
    top1: float | None,
    source: str,
    ssld: bool = False,
    baseline: float | None = None,
    note: str = "",
) -> WeightCard:
    suffix = "_ssld" if ssld else ""
    return WeightCard(
        f"{arch}{suffix}",
        arch,
        (f"{_LEGENDARY}{paddle}{suffix}_pretrained.pdparams",),
        top1=top1,
        top1_source=source,
        baseline_top1=baseline,
        teacher=None,
        description=" ".join(filter(None, [_NO_TEACHER if ssld else "", note])),
    )


register_weights(
    # SSLD_DOC: HRNet_W18_C 76.9 -> 81.6, HRNet_W48_C 79.0 -> 83.6, SE_HRNet_W64_C - -> 84.7.
    # (SSLD_DOC's download link for HRNet_W18_C_ssld is broken - ".../legendary_models/
    # _ssld_pretrained.pdparams" - the file is at the name PaddleClas's loader builds.)
    _card("hrnet_w18_c", "HRNet_W18_C", 76.9, SSLD_DOC),
    _card("hrnet_w18_c", "HRNet_W18_C", 81.6, SSLD_DOC, ssld=True, baseline=76.9),
    _card("hrnet_w30_c", "HRNet_W30_C", 78.0, _HRNET_DOC),
    _card("hrnet_w32_c", "HRNet_W32_C", 78.3, _HRNET_DOC),
    _card("hrnet_w40_c", "HRNet_W40_C", 78.8, _HRNET_DOC),
    _card("hrnet_w44_c", "HRNet_W44_C", 79.0, _HRNET_DOC),
    _card("hrnet_w48_c", "HRNet_W48_C", 79.0, SSLD_DOC),
    _card("hrnet_w48_c", "HRNet_W48_C", 83.6, SSLD_DOC, ssld=True, baseline=79.0),
    _card("hrnet_w64_c", "HRNet_W64_C", 79.3, _HRNET_DOC),
    # No plain SE_HRNet_W64_C weights are published (and PaddleClas 2.6.0's MODEL_URLS lacks
    # the entry altogether), so the SSLD card has no baseline.
    _card(
        "se_hrnet_w64_c",
        "SE_HRNet_W64_C",
        84.7,
        SSLD_DOC,
        ssld=True,
        note="No non-SSLD SE_HRNet_W64_C weights are published.",
    ),
)
