"""Classifiers from other libraries by name: ``timm/<model>``, ``torchvision/<model>`` or an
importable builder ``package.module:function``; what :func:`ssld_zoo.load` reads a distilled
non-zoo student back with (its card names the spec as ``arch``), and what the engine's
``TimmModel``/``TorchvisionModel``/``ImportedModel`` build (:mod:`ssld_zoo.engine.models`)."""

from __future__ import annotations

import importlib
from typing import Any

import torch.nn as nn

__all__ = ["is_foreign", "create_foreign", "import_builder"]


def is_foreign(name: str) -> bool:
    """Whether ``name`` names a model outside the zoo (``timm/...``, ``torchvision/...``,
    ``pkg.mod:fn``). Not a str: False (the zoo's lookup then names the wrong type)."""
    return isinstance(name, str) and (name.startswith(("timm/", "torchvision/")) or ":" in name)


def import_builder(builder: str):
    """The callable ``'package.module:function'`` names."""
    module, sep, attr = builder.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"builder={builder!r}: expected 'package.module:function'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"builder={builder!r}: cannot import it ({e})") from None


def create_foreign(
    name: str, num_classes: int | None = None, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
    """A model from its library, random or with the library's own pretrained weights."""
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if name.startswith("timm/"):
        import timm

        return timm.create_model(name[len("timm/") :], pretrained=pretrained, **kwargs)
    if name.startswith("torchvision/"):
        import torchvision

        return torchvision.models.get_model(
            name[len("torchvision/") :], weights="DEFAULT" if pretrained else None, **kwargs
        )
    return import_builder(name)(**kwargs)
