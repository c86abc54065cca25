"""Fixtures of the downstream tests: the OpenMMLab stack (installed by
``downstream/install_openmmlab.sh``; tests skip without it, and fail under CI) and quiet logs."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOWNSTREAM = REPO_ROOT / "downstream"
INSTALL_HINT = "run downstream/install_openmmlab.sh (make setup-downstream)"


def _require(unavailable, *modules: str) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            unavailable(f"{name} is not importable ({e}): {INSTALL_HINT}")


def _quiet() -> None:
    from mmengine.logging import MMLogger

    MMLogger.get_instance("mmengine").setLevel(logging.ERROR)
    MMLogger.get_current_instance().setLevel(logging.ERROR)


@pytest.fixture
def mmengine_only(resource_unavailable):
    """mmengine importable and the adapter registered (no mmcv ops needed)."""
    _require(resource_unavailable, "mmengine")
    import ssld_zoo.adapters.mmlab  # noqa: F401  (registers SSLDBackbone)

    _quiet()


@pytest.fixture
def mmdet(resource_unavailable):
    """mmdet's modules registered, default scope mmdet."""
    _require(resource_unavailable, "mmengine", "mmcv.ops", "mmdet")
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    import ssld_zoo.adapters.mmlab  # noqa: F401

    _quiet()


@pytest.fixture
def mmseg(resource_unavailable):
    """mmseg's modules registered, default scope mmseg."""
    _require(resource_unavailable, "mmengine", "mmcv.ops", "mmseg")
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    import ssld_zoo.adapters.mmlab  # noqa: F401

    _quiet()
