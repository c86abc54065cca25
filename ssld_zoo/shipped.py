"""Where the files that ship with ssld-zoo are: the distillation recipes and the
MMDetection / MMSegmentation configs.

In a checkout they are the repository's ``recipes/`` and ``downstream/``; a built wheel carries
copies inside the package (``ssld_zoo/recipes/`` and ``ssld_zoo/downstream/{_base_,mmdet,mmseg}/``,
written by ``setup.py``'s build step). Everything that looks for those files asks here, so
installed and checkout behave the same. (mmengine's ``pkg::config`` base syntax only serves
OpenMMLab's own packages, so a config of yours inherits ours by path: ``ssld-zoo configs``.)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["recipes_dir", "downstream_dir", "downstream_configs"]

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent  # the repository root when running from a checkout


def recipes_dir() -> Path | None:
    """The folder of the shipped recipes (None if neither copy exists)."""
    for d in (_PACKAGE / "recipes", _CHECKOUT / "recipes"):
        if (d / "_base_").is_dir():
            return d
    return None


def downstream_dir() -> Path | None:
    """The folder holding ``mmdet/`` and ``mmseg/`` configs (None if neither copy exists)."""
    for d in (_PACKAGE / "downstream", _CHECKOUT / "downstream"):
        if (d / "mmdet").is_dir():
            return d
    return None


def downstream_configs() -> list[Path]:
    """Every shipped downstream config file, sorted (``mmdet/...``, then ``mmseg/...``). The
    ``_base_/`` folders (and any name starting with ``_``) hold building blocks that the configs
    inherit, not configs to train: they are not listed."""
    root = downstream_dir()
    if root is None:
        return []
    return sorted(
        p
        for task in ("mmdet", "mmseg")
        for p in (root / task).glob("*.py")
        if not p.name.startswith("_")
    )
