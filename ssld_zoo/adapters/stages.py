"""Stage structure of a zoo backbone: which modules form the stem and each stage.

Zoo models keep PaddleClas's module names (ResNet_vd's blocks are flat, ``blocks.0`` ...
``blocks.15``), so "stage 2" is not a sub-module but a range of modules. Downstream code needs
stages for three things, all built here on the backbone's ``feature_info``, for any family:

* freezing the stem and the first stages (``frozen_stages``, MMDetection's convention);
* per-stage learning rates (PaddleDetection's ``lr_mult_list``, the paper's transfer recipe);
* dilation instead of striding in the last stages (``output_stride`` 8/16 for segmentation).

The rule: order the leaf modules as registered (= the order the forward uses them in these
sequential networks); stage ``i`` ends at the last leaf inside ``feature_info[i].module`` and
starts after stage ``i - 1``. Stage 0 starts at the first of the run of sibling modules named
like its output module (``blocks.0`` .. ``blocks.2``, ``bb_0_0`` .. ``bb_0_2``); what precedes
it is the stem; what follows the last stage (pooling, classifier) is the head. Families whose
outputs are not a sequence of stages (HRNet's parallel branches) raise ValueError.
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
        return ([("stem", self.stem)] + [(f"stages.{i}", s) for i, s in enumerate(self.stages)]
                + [("head", self.head)])


def _leaves(model: nn.Module) -> list[str]:
    # Leaves with state or computation; containers are skipped, empty leaves kept (they cost
    # nothing and keep the order complete).
    return [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def _under(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def stage_layout(model: nn.Module, feature_info: Sequence[FeatureInfo] | None = None
                 ) -> StageLayout:
    """Group ``model``'s leaf modules into stem, stages (one per ``feature_info`` entry) and head.

    Raises ValueError when the feature modules are not in forward order (a family whose
    stages cannot be cut this way).
    """
    info = list(feature_info if feature_info is not None else model.feature_info)
    leaves = _leaves(model)
    ends = []
    for i, f in enumerate(info):
        idx = [k for k, n in enumerate(leaves) if _under(n, f.module)]
        if not idx:
            raise ValueError(f"stage {i}'s module {f.module!r} is not a module of "
                             f"{type(model).__name__}")
        ends.append(max(idx))
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(f"{type(model).__name__}: stage modules "
                         f"{[f.module for f in info]} are not in forward order")
    start = _stage0_start(leaves, info[0].module)
    stages, prev = [], start
    for end in ends:
        stages.append(tuple(leaves[prev:end + 1]))
        prev = end + 1
    return StageLayout(stem=tuple(leaves[:start]), stages=tuple(stages),
                       head=tuple(leaves[ends[-1] + 1:]))


def _stage0_start(leaves: list[str], module: str) -> int:
    """Index of stage 0's first leaf: walk back from ``module`` over sibling modules named
    like it with other numbers (``blocks.0``/``blocks.1`` before ``blocks.2``; ``bb_0_0``
    before ``bb_0_2``), so that the stem is what comes before that run of blocks."""
    depth = module.count(".") + 1
    pattern = re.compile(re.sub(r"\d+", r"\\d+", re.escape(module)) + "$")
    start = min(k for k, n in enumerate(leaves) if _under(n, module))
    while start > 0:
        owner = ".".join(leaves[start - 1].split(".")[:depth])
        if not pattern.match(owner):
            break
        start -= 1
    return start


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def dilate_(model: nn.Module, output_stride: int,
            feature_info: Sequence[FeatureInfo] | None = None) -> list[FeatureInfo]:
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
        raise ValueError(f"output_stride {output_stride} is not one of this backbone's stage "
                         f"strides {reductions}")
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
        raise ValueError(f"{type(model).__name__}: stage strides {got} after dilation, expected "
                         f"{want}; this family does not support output_stride this way")
