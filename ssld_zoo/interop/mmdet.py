"""MMDetection / MMPretrain's ``ResNetV1d`` layout for ResNet50/101/152_vd: a ``.pth``
checkpoint that a stock config loads with
``backbone=dict(type='ResNetV1d', depth=50, init_cfg=dict(type='Pretrained', checkpoint=FILE))``.

``ResNetV1d`` (``deep_stem=True, avg_down=True``, style ``pytorch``) is ResNet_vd: the stem
``conv 3->32/2, 32->32, 32->64`` (``stem.0/3/6`` with BatchNorms ``stem.1/4/7``), stride on the
3x3 conv (``conv2``), average-pool (ceil, padding excluded) then 1x1 conv on strided shortcuts.
Only the bottleneck depths are the same network: mmdet's ResNet18/34 give stage 1's first block
the identity shortcut where PaddleClas has a projection, and mmdet has no depth 200.

The file is ``{"state_dict": ..., "meta": ...}`` of tensors, strings and numbers, so
``torch.load(FILE, weights_only=True)`` reads it (mmengine's loader does).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ssld_zoo.interop._core import (
    Converted,
    Format,
    ResNetVdKey,
    compare_stages,
    probe_batch,
    register_format,
    resnet_vd_state,
    save_pth,
    stage_outputs,
)

__all__ = ["MMDetFormat", "resnet_v1d_state"]

_DEPTHS = (50, 101, 152)


def resnet_v1d_state(model: nn.Module, where: str) -> dict[str, torch.Tensor]:
    """Our ResNet_vd's tensors under ``ResNetV1d``'s names (the classifier dropped)."""

    def name(k: ResNetVdKey) -> str:
        if k.part.startswith("stem"):  # Sequential(conv, bn, relu) x 3
            return f"stem.{3 * int(k.part[4:]) + (k.layer == 'bn')}.{k.leaf}"
        block = f"layer{k.stage + 1}.{k.index}"
        if k.part == "short":
            # downsample = [AvgPool2d, conv, bn]: with avg_down mmdet adds the pool in every
            # stage, a 1x1/1 no-op in stage 1 (where PaddleClas has no pool).
            return f"{block}.downsample.{1 + (k.layer == 'bn')}.{k.leaf}"
        c = int(k.part[4:]) + 1
        return f"{block}.{'bn' if k.layer == 'bn' else 'conv'}{c}.{k.leaf}"

    return resnet_vd_state(model, name, where)


@register_format
class MMDetFormat(Format):
    name = "mmdet"
    summary = "MMDetection / MMPretrain ResNetV1d checkpoint (.pth, init_cfg Pretrained)"
    suffix = ".pth"

    def targets(self) -> dict[str, str]:
        return {f"resnet{d}_vd": f"ResNetV1d(depth={d})" for d in _DEPTHS}

    def why_not(self, arch: str) -> str:
        if arch in ("resnet18_vd", "resnet34_vd"):
            return (
                "mmdet's ResNetV1d gives stage 1's first basic block the identity shortcut; "
                "PaddleClas's has a 1x1 conv-BN projection"
            )
        if arch == "resnet200_vd":
            return "mmdet's ResNet has no depth 200"
        return "mmdet's PaddleClas twin is ResNetV1d (ResNet_vd) only"

    def convert(self, model: nn.Module, arch: str) -> Converted:
        depth = int(arch[len("resnet") : -len("_vd")])
        state = resnet_v1d_state(model, f"{arch} -> mmdet")
        return Converted(self.name, arch, self.targets()[arch], state, {"depth": depth})

    def check(self, model: nn.Module, converted: Converted) -> float:
        try:
            from mmdet.models.backbones import ResNetV1d
        except ImportError as e:
            raise ImportError(
                "checking the mmdet format needs mmdet: pip install 'ssld-zoo[det]'"
            ) from e
        theirs = ResNetV1d(depth=converted.config["depth"], out_indices=(0, 1, 2, 3))
        missing, unexpected = theirs.load_state_dict(converted.state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{converted.arch} -> mmdet: keys do not fit ResNetV1d: missing "
                f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
            )
        theirs.eval()
        x = probe_batch(like=next(model.parameters()))
        with torch.no_grad():
            feats = list(theirs(x))
        return compare_stages(
            stage_outputs(model, x), feats, f"{converted.arch} -> mmdet {converted.target}"
        )

    def write(self, converted: Converted, out: Path) -> None:
        save_pth(
            {
                "state_dict": converted.state,
                "meta": {
                    "arch": converted.arch,
                    "converted_by": "ssld-zoo to mmdet",
                    "target": converted.target,
                },
            },
            out,
        )

    def usage(self, converted: Converted, out: Path) -> str:
        return (
            f"backbone=dict(type='ResNetV1d', depth={converted.config['depth']}, "
            f"init_cfg=dict(type='Pretrained', checkpoint={str(out)!r}))"
        )
