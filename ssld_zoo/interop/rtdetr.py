"""RT-DETR's PResNet layout (``lyuwenyu/RT-DETR``, ``src/nn/backbone/presnet.py``, variant
``d``): ResNet18/34/50/101_vd without the classifier, as a ``.pth`` state dict.

PResNet variant ``d`` is ResNet_vd: the three-conv stem ``conv1.conv1_{1,2,3}``, stride on the
3x3 conv of the bottleneck (``branch2b``), a projection shortcut on the first block of every
stage (``short``: a 1x1 conv in stage 1, ``pool`` then ``conv`` after), BatchNorm as ``norm``.
RT-DETR registers depths 18, 34, 50 and 101 only (152 is commented out there).

RT-DETR is not a package, so its network cannot be run here. What proves this layout: the key
names and shapes of PResNet, read from its source, are held in ``tests/interop/fixtures``,
and each tensor written here is the one :mod:`ssld_zoo.interop.hf` writes under the name
transformers' own RT-DETR conversion gives it (``RTDetrResNetBackbone``, checked by output).
``check`` runs that same transformers network on this state dict renamed by that table.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ssld_zoo.interop._core import (
    Converted,
    Format,
    ResNetVdKey,
    register_format,
    rename_state,
    resnet_vd_state,
    save_pth,
)

__all__ = ["RTDetrFormat", "RTDETR_TO_HF", "rtdetr_key_to_hf"]

_DEPTHS = (18, 34, 50, 101)
_BRANCH = {"conv0": "branch2a", "conv1": "branch2b", "conv2": "branch2c"}
_NORM = {"conv": "conv", "bn": "norm"}

#: transformers' mapping of RT-DETR's backbone keys onto ``RTDetrResNetBackbone``'s
#: (``convert_rt_detr_v2_original_pytorch_checkpoint_to_hf.py``, less its ``model.backbone.model.``
#: prefix), as (regex, replacement) pairs: the bridge that ties this layout to the checked one.
RTDETR_TO_HF: tuple[tuple[str, str], ...] = (
    *[
        (rf"conv1\.conv1_{j + 1}\.conv\.(\w+)", rf"embedder.embedder.{j}.convolution.\1")
        for j in range(3)
    ],
    *[
        (rf"conv1\.conv1_{j + 1}\.norm\.(\w+)", rf"embedder.embedder.{j}.normalization.\1")
        for j in range(3)
    ],
    *[
        (
            rf"res_layers\.(\d+)\.blocks\.(\d+)\.branch2{b}\.conv\.(\w+)",
            rf"encoder.stages.\1.layers.\2.layer.{i}.convolution.\3",
        )
        for i, b in enumerate("abc")
    ],
    *[
        (
            rf"res_layers\.(\d+)\.blocks\.(\d+)\.branch2{b}\.norm\.(\w+)",
            rf"encoder.stages.\1.layers.\2.layer.{i}.normalization.\3",
        )
        for i, b in enumerate("abc")
    ],
    (
        r"res_layers\.0\.blocks\.0\.short\.conv\.(\w+)",
        r"encoder.stages.0.layers.0.shortcut.convolution.\1",
    ),
    (
        r"res_layers\.0\.blocks\.0\.short\.norm\.(\w+)",
        r"encoder.stages.0.layers.0.shortcut.normalization.\1",
    ),
    (
        r"res_layers\.(\d+)\.blocks\.0\.short\.conv\.conv\.(\w+)",
        r"encoder.stages.\1.layers.0.shortcut.1.convolution.\2",
    ),
    (
        r"res_layers\.(\d+)\.blocks\.0\.short\.conv\.norm\.(\w+)",
        r"encoder.stages.\1.layers.0.shortcut.1.normalization.\2",
    ),
)


def rtdetr_key_to_hf(key: str) -> str:
    """An RT-DETR PResNet key under transformers' name for it (:data:`RTDETR_TO_HF`)."""
    return next(iter(rename_state({key: torch.zeros(())}, RTDETR_TO_HF, "rtdetr -> hf")))


def presnet_state(model: nn.Module, where: str) -> dict[str, torch.Tensor]:
    """Our ResNet_vd's tensors under PResNet's names (the classifier dropped)."""

    def name(k: ResNetVdKey) -> str:
        if k.part.startswith("stem"):
            return f"conv1.conv1_{int(k.part[4:]) + 1}.{_NORM[k.layer]}.{k.leaf}"
        block = f"res_layers.{k.stage}.blocks.{k.index}"
        if k.part == "short":
            # Stage 1's projection is a bare ConvNormLayer; later ones are pool + conv.
            inner = "short" if k.stage == 0 else "short.conv"
            return f"{block}.{inner}.{_NORM[k.layer]}.{k.leaf}"
        return f"{block}.{_BRANCH[k.part]}.{_NORM[k.layer]}.{k.leaf}"

    return resnet_vd_state(model, name, where)


@register_format
class RTDetrFormat(Format):
    name = "rtdetr"
    summary = "RT-DETR / RT-DETRv2 PResNet (variant d) backbone state dict (.pth)"
    suffix = ".pth"

    def targets(self) -> dict[str, str]:
        return {f"resnet{d}_vd": f"PResNet(depth={d}, variant='d')" for d in _DEPTHS}

    def why_not(self, arch: str) -> str:
        if arch.startswith("resnet") and arch.endswith("_vd"):
            return "RT-DETR's PResNet registers depths 18, 34, 50 and 101 only"
        return "RT-DETR's backbone layout here is PResNet (ResNet_vd) only"

    def convert(self, model: nn.Module, arch: str) -> Converted:
        depth = int(arch[len("resnet") : -len("_vd")])
        state = presnet_state(model, f"{arch} -> rtdetr")
        return Converted(self.name, arch, self.targets()[arch], state, {"depth": depth})

    def check(self, model: nn.Module, converted: Converted) -> float:
        from ssld_zoo.interop.hf import run_rtdetr_resnet

        hf_state = {rtdetr_key_to_hf(k): v for k, v in converted.state.items()}
        return run_rtdetr_resnet(
            model, hf_state, "rtdetr (through transformers' RTDetrResNetBackbone)"
        )

    def write(self, converted: Converted, out: Path) -> None:
        save_pth(converted.state, out)

    def usage(self, converted: Converted, out: Path) -> str:
        return (
            f"PResNet: {{depth: {converted.config['depth']}, variant: d, pretrained: "
            f"{str(out)!r}}}  # RT-DETRv2 config; RT-DETR v1: see docs/detectors.md"
        )
