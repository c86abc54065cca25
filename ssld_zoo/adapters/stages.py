"""Stage structure of a zoo backbone: which modules form the stem and each stage.

Zoo models keep PaddleClas's module names (ResNet_vd's blocks are flat, ``blocks.0`` ...
``blocks.15``), so "stage 2" is not a sub-module but a range of modules. Downstream code needs
stages for three things, all built here for any family:

* freezing the stem and the first stages (``frozen_stages``, MMDetection's convention);
* per-stage learning rates (PaddleDetection's ``lr_mult_list``, the paper's transfer recipe);
* dilation instead of striding in the last stages (``output_stride`` 8/16 for segmentation).

The stages are the model's own ``group_matcher(coarse=True)`` (timm's API, the same groups its
layer-wise learning-rate decay uses; :mod:`ssld_zoo.models._groups` derives them): each leaf
module goes to the stem, to stage ``i``, or, matched by neither, to the head. A family whose
outputs are not a sequence of stages (HRNet's parallel branches: every ``feature_info`` entry
comes from its last stage) raises ValueError.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from ssld_zoo.registry import FeatureInfo

__all__ = ["StageLayout", "stage_layout", "dilate_", "verify_reductions"]


@dataclass(frozen=True)
class StageLayout:
    """Leaf-module names of a backbone, grouped: ``stem``, ``stages[i]``, ``head``."""

    stem: tuple[str, ...]
    stages: tuple[tuple[str, ...], ...]
    head: tuple[str, ...]

    def group_of(self, param_or_module_name: str) -> str:
        """``'stem'``, ``'stages.<i>'`` or ``'head'`` for a parameter/buffer/module name."""
        name = param_or_module_name
        for group, members in self.groups():
            for m in members:
                if name == m or name.startswith(m + "."):
                    return group
        raise KeyError(f"{name!r} belongs to no leaf module of this backbone")

    def groups(self) -> list[tuple[str, tuple[str, ...]]]:
        return (
            [("stem", self.stem)]
            + [(f"stages.{i}", s) for i, s in enumerate(self.stages)]
            + [("head", self.head)]
        )


def _leaves(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def _under(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def stage_layout(
    model: nn.Module, feature_info: Sequence[FeatureInfo] | None = None
) -> StageLayout:
    """Group ``model``'s leaf modules into stem, stages (one per ``feature_info`` entry) and
    head, by ``model.group_matcher(coarse=True)``.

    Raises ValueError when the model has no ``group_matcher`` or stage ``i``'s output module
    (``feature_info[i].module``) is not in group ``i`` (a family whose stages cannot be cut
    into a sequence).
    """
    info = list(feature_info if feature_info is not None else model.feature_info)
    if not hasattr(model, "group_matcher"):
        raise ValueError(
            f"{type(model).__name__} has no group_matcher (timm's API): its stages are unknown"
        )
    try:
        matcher = model.group_matcher(coarse=True)
    except ValueError as e:
        raise ValueError(f"{type(model).__name__}: {e}") from None
    stem_re = re.compile(matcher["stem"]) if matcher.get("stem") else None
    stage_res = [(re.compile(r), ordinal[0]) for r, ordinal in matcher["blocks"]]
    if sorted(i for _, i in stage_res) != list(range(len(info))):
        raise ValueError(
            f"{type(model).__name__}: group_matcher has stages "
            f"{[i for _, i in stage_res]}, feature_info {len(info)}"
        )
    stem: list[str] = []
    stages: list[list[str]] = [[] for _ in info]
    head: list[str] = []
    for leaf in _leaves(model):
        name = leaf + "."
        if stem_re is not None and stem_re.match(name):
            stem.append(leaf)
            continue
        stage = next((i for r, i in stage_res if r.match(name)), None)
        (head if stage is None else stages[stage]).append(leaf)
    for i, f in enumerate(info):
        if not any(_under(n, f.module) for n in stages[i]):
            raise ValueError(
                f"{type(model).__name__}: stage {i}'s output module {f.module!r} "
                f"is not a module of its stage {i} group"
            )
    return StageLayout(stem=tuple(stem), stages=tuple(tuple(s) for s in stages), head=tuple(head))


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def dilate_(
    model: nn.Module, output_stride: int, feature_info: Sequence[FeatureInfo] | None = None
) -> list[FeatureInfo]:
    """Trade the strides of the stages deeper than ``output_stride`` for dilation, in place.

    As PaddleSeg's dilated ResNet_vd does it (no multi-grid, no contracted first block): in a
    stage whose reduction ``r`` exceeds ``output_stride``, strided convs get stride 1, every
    k>1 conv gets dilation ``r / output_stride`` (padding scaled to keep the size), and strided
    pooling (the vd shortcut's average pool) is dropped. Parameter shapes do not change, so
    pretrained weights still load. Returns the new feature info (reductions capped at
    ``output_stride``); raises ValueError for a stride the backbone does not have.
    """
    info = list(feature_info if feature_info is not None else model.feature_info)
    reductions = sorted({f.reduction for f in info})
    if output_stride not in reductions:
        raise ValueError(
            f"output_stride {output_stride} is not one of this backbone's stage "
            f"strides {reductions}"
        )
    layout = stage_layout(model, info)
    for f, leaves in zip(info, layout.stages):
        if f.reduction <= output_stride:
            continue
        d = f.reduction // output_stride
        for name in leaves:
            m = model.get_submodule(name)
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0]
                if m.stride != (1, 1):
                    m.stride = (1, 1)
                if k > 1:
                    if m.padding != ((k - 1) // 2 * m.dilation[0],) * 2:
                        raise ValueError(f"{name}: cannot dilate a conv with padding {m.padding}")
                    m.dilation = (d, d)
                    m.padding = ((k - 1) // 2 * d,) * 2
            elif isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
                stride = m.stride if isinstance(m.stride, int) else m.stride[0]
                if stride > 1:
                    _set_module(model, name, nn.Identity())
    new_info = [dataclasses.replace(f, reduction=min(f.reduction, output_stride)) for f in info]
    verify_reductions(model, new_info)
    return new_info


@torch.no_grad()
def verify_reductions(model: nn.Module, info: Sequence[FeatureInfo], size: int = 64) -> None:
    """Run one small input and check each stage's output stride is the one ``info`` claims."""
    was_training = model.training
    model.eval()
    try:
        feats = model.forward_stages(torch.zeros(1, 3, size, size))
    finally:
        model.train(was_training)
    got = [size / f.shape[-1] for f in feats]
    want = [f.reduction for f in info]
    if any(abs(g - w) > w / 2 for g, w in zip(got, want)):
        raise ValueError(
            f"{type(model).__name__}: stage strides {got} after dilation, expected "
            f"{want}; this family does not support output_stride this way"
        )
