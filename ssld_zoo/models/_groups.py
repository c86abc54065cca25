"""Which modules of a zoo backbone form its stem, each stage and each block: timm's
``group_matcher`` (layer-wise learning-rate decay, per-stage learning rates, freezing), written
once for every family on top of ``feature_info``.

Zoo models keep PaddleClas's module names, so a stage is often not one sub-module: ResNet_vd's
blocks are flat (``blocks.0`` .. ``blocks.15``), Res2Net's are top-level attributes
(``bb_0_0`` ..). The rule, on the leaf modules in registration order (= the order the forward
runs them in these sequential networks): stage ``i`` ends at the last leaf inside
``feature_info[i].module`` and starts right after stage ``i - 1``; stage 0 starts at the first
of the run of sibling modules of the same class and name pattern as its output module
(``blocks.0``/``blocks.1`` before ``blocks.2``); what precedes it is the stem, what follows the
last stage (pooling, classifier) the head. A family whose stages are not one sequence (HRNet's
parallel branches) overrides ``group_matcher``.
"""

from __future__ import annotations

import re
from typing import Any

import torch.nn as nn

__all__ = ["stage_units", "matcher_from_units"]


def _leaves(model: nn.Module) -> list[str]:
    # Leaves with state or computation; containers skipped, empty leaves kept (they cost
    # nothing and keep the order complete).
    return [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def _under(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def _stage0_start(model: nn.Module, leaves: list[str], module: str) -> int:
    depth = module.count(".") + 1
    pattern = re.compile(re.sub(r"\d+", r"\\d+", re.escape(module)) + "$")
    kind = type(model.get_submodule(module))
    start = min(k for k, n in enumerate(leaves) if _under(n, module))
    while start > 0:
        owner = ".".join(leaves[start - 1].split(".")[:depth])
        if not pattern.match(owner) or type(model.get_submodule(owner)) is not kind:
            break
        start -= 1
    return start


def _unit(leaf: str, stage_module: str | None, whole_items: bool) -> str:
    """The block a leaf belongs to: inside a stage that is one module holding a list of
    blocks, the path up to the first index below the stage (``stages.0.blocks.1``), or the
    first name below it (``stages.1.downsample``); otherwise the path up to its first index
    (``blocks.4``), or its first name (``bb_1_2``, ``conv1``)."""
    parts = leaf.split(".")
    if stage_module is not None and not whole_items and _under(leaf, stage_module):
        base = stage_module.split(".")
        rest = parts[len(base) :]
        cut = next((i for i, p in enumerate(rest) if p.isdigit()), 0)
        return ".".join(base + rest[: cut + 1])
    cut = next((i for i, p in enumerate(parts) if p.isdigit()), 0)
    return ".".join(parts[: cut + 1])


def stage_units(model: nn.Module) -> tuple[list[str], list[list[str]]]:
    """``(stem units, per stage its block units)`` as module names, in forward order, by the
    rule of this module's docstring. ValueError when the stage modules are not in order."""
    info = list(model.feature_info)
    leaves = _leaves(model)
    ends = []
    for i, f in enumerate(info):
        idx = [k for k, n in enumerate(leaves) if _under(n, f.module)]
        if not idx:
            raise ValueError(
                f"stage {i}'s module {f.module!r} is not a module of {type(model).__name__}"
            )
        ends.append(max(idx))
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(
            f"{type(model).__name__}: stage modules {[f.module for f in info]} "
            "are not in forward order"
        )
    start = _stage0_start(model, leaves, info[0].module)
    stem = list(dict.fromkeys(_unit(n, None, True) for n in leaves[:start]))
    stages, prev = [], start
    for f, end in zip(info, ends):
        members = leaves[prev : end + 1]
        # A stage spanning several items of a list (ResNet_vd's blocks.0..2) is those items;
        # a stage that is one module (stages.0) is divided below it.
        whole_items = any(not _under(n, f.module) for n in members)
        units = list(dict.fromkeys(_unit(n, f.module, whole_items) for n in members))
        # One module without a list of blocks below it (a last 1x1 conv-BN) is one block.
        if not whole_items and not any(
            p.isdigit() for n in members for p in n[len(f.module) :].split(".")
        ):
            units = [f.module]
        stages.append(units)
        prev = end + 1
    return stem, stages


def _regex(units: list[str]) -> str:
    return r"^(?:" + "|".join(re.escape(u) for u in units) + r")\."


def matcher_from_units(stem: list[str], stages: list[list[str]], coarse: bool) -> dict[str, Any]:
    """timm's group_matcher dict: ``stem`` one regex, ``blocks`` a list of (regex, (ordinal,))
    per stage (coarse) or per block (fine). Names no regex matches (the head) fall into
    timm's last group."""
    if coarse:
        blocks = [(_regex(units), (i,)) for i, units in enumerate(stages)]
    else:
        flat = [u for units in stages for u in units]
        blocks = [(_regex([u]), (i,)) for i, u in enumerate(flat)]
    return {"stem": _regex(stem) if stem else None, "blocks": blocks}
