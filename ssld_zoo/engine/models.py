"""Classifiers from anywhere, through mmengine's ``MODELS`` registry, each with its own input.

A teacher or student of a recipe is one of::

    dict(type="ZooModel", name="resnet50_vd", pretrained=False)      # a zoo architecture
    dict(type="TimmModel", name="convnext_tiny")                       # or "timm/convnext_tiny"
    dict(type="TorchvisionModel", name="resnet18", weights=None)
    dict(type="ImportedModel", builder="my_pkg.models:build_net", width=2)  # any builder

or a string for short: ``"resnet50_vd"``, ``"timm/convnext_tiny"``, ``"my_pkg.models:build_net"``.
Pretrained weights come through each library's own mechanism. :class:`ModelInput` is how a model
sees a batch of [0, 1] images: resized to its own size (if it has one) and normalised with its
own mean and std (by default those its weights were trained with: the zoo card's, timm's
``pretrained_cfg``, else ImageNet's).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ssld_zoo.foreign import create_foreign, import_builder
from ssld_zoo.registry import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "ZooModel",
    "TimmModel",
    "TorchvisionModel",
    "ImportedModel",
    "model_spec",
    "build_classifier",
    "ModelInput",
    "default_input",
    "num_classes_of",
    "spec_text",
]


@MODELS.register_module()
def ZooModel(
    name: str,
    weights: str | None = None,
    pretrained: bool = False,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A zoo model by name (named as the ``type`` a config writes): from scratch, its published
    weights, or a weights file (an exported card tells :func:`ssld_zoo.load` its classes)."""
    from ssld_zoo.api import load

    if weights is not None:
        return load(name, weights=weights, num_classes=num_classes, **kwargs)
    return load(name, pretrained=pretrained, num_classes=num_classes, **kwargs)


@MODELS.register_module()
def TimmModel(
    name: str, pretrained: bool = False, num_classes: int | None = None, **kwargs: Any
) -> nn.Module:
    """``timm.create_model(name, ...)``; ``name`` may start with ``timm/`` (its Hub
    organisation, as timm's model cards write it). A local file: ``pretrained=True,
    pretrained_cfg_overlay=dict(file=PATH)``."""
    name = name[len("timm/") :] if name.startswith("timm/") else name
    return create_foreign(f"timm/{name}", num_classes, pretrained, **kwargs)


@MODELS.register_module()
def TorchvisionModel(
    name: str, weights: str | None = None, num_classes: int | None = None, **kwargs: Any
) -> nn.Module:
    """``torchvision.models.get_model(name, weights=...)`` (``weights``: e.g. ``'DEFAULT'``)."""
    import torchvision

    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return torchvision.models.get_model(name, weights=weights, **kwargs)


@MODELS.register_module()
def ImportedModel(builder: str, **kwargs: Any) -> nn.Module:
    """``builder(**kwargs)`` for ``builder='package.module:function'`` (or a class)."""
    return import_builder(builder)(**kwargs)


def model_spec(spec: str | dict) -> dict:
    """The config dict of a model given as a string (``'resnet50_vd'``, ``'timm/convnext_tiny'``,
    ``'pkg.mod:fn'``) or a dict (one without ``type`` is a zoo model)."""
    if isinstance(spec, str):
        if ":" in spec:
            return dict(type="ImportedModel", builder=spec)
        if spec.startswith("timm/"):
            return dict(type="TimmModel", name=spec)
        return dict(type="ZooModel", name=spec)
    spec = dict(spec)
    spec.setdefault("type", "ZooModel")
    return spec


def spec_text(spec: str | dict) -> str:
    """A short name for a model spec (cards, logs): ``timm/convnext_tiny``, ``resnet50_vd``."""
    s = model_spec(spec)
    kind = s["type"] if isinstance(s["type"], str) else getattr(s["type"], "__name__", "model")
    what = s.get("name") or s.get("builder") or "?"
    return {
        "ZooModel": str(what),
        "TimmModel": f"timm/{str(what).removeprefix('timm/')}",
        "TorchvisionModel": f"torchvision/{what}",
    }.get(kind, str(what))


def build_classifier(spec: str | dict | nn.Module) -> nn.Module:
    """A model from a spec (see the module doc), or ``spec`` itself when it is a module."""
    if isinstance(spec, nn.Module):
        return spec
    return MODELS.build(model_spec(spec))


def default_input(model: nn.Module) -> dict:
    """``dict(mean, std, input_size)`` the model's weights expect: a zoo model's card
    transform, a timm (or zoo) model's ``pretrained_cfg``, else ImageNet's statistics. The
    input size is None (the crops as they come) unless a spec sets it: a model's published
    size says nothing of the crops a recipe trains on (CIFAR-10's are 32 px)."""
    card = getattr(model, "weight_card", None)
    if card is not None:
        t = card.transform
        return dict(mean=tuple(t.mean), std=tuple(t.std), input_size=None)
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and "mean" in cfg:
        return dict(mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), input_size=None)
    return dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=None)


def num_classes_of(model: nn.Module, input_size: int = 224) -> int:
    """The classes a classifier predicts: ``model.num_classes``, else the width of its output
    on one blank image (read once, in eval mode, without gradients)."""
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    was_training = model.training
    p = next(model.parameters(), None)
    with torch.no_grad():
        out = model.eval()(
            torch.zeros(1, 3, input_size, input_size, device=p.device if p is not None else "cpu")
        )
    model.train(was_training)
    return int(out.shape[-1])


class ModelInput(nn.Module):
    """[0, 1] images -> what one model takes: resized to ``input_size`` (None: as they come)
    and normalised with ``mean``/``std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], input_size: int | None = None):
        super().__init__()
        # Not persistent: settings of the run, not weights of a model.
        self.register_buffer("mean", torch.tensor(tuple(mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std)).view(1, -1, 1, 1), persistent=False)
        self.input_size = input_size
        self._settings = dict(
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            input_size=input_size,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and x.shape[-1] != self.input_size:
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return (x - self.mean) / self.std

    def settings(self) -> dict:
        """``dict(mean, std, input_size)`` as given."""
        return dict(self._settings)
