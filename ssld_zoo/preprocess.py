"""The input side of a loaded model: the card of its weights, the eval transform they were
published with, and images read for it (shared by ``ssld-zoo predict`` and ``ssld-zoo export``).
"""
from __future__ import annotations

import os

import torch.nn as nn

from ssld_zoo.registry import EvalTransform, WeightCard, get_weights

__all__ = ["weight_card_of", "eval_transform_of", "read_image"]


def weight_card_of(model: nn.Module) -> WeightCard | None:
    """The :class:`WeightCard` of the weights ``model`` was loaded with, or None.

    ``model.weight_card`` holds it; models built before the timm-style ``pretrained_cfg``
    dict kept the card in ``pretrained_cfg`` itself, which is read as a fallback."""
    card = getattr(model, "weight_card", None)
    if card is None:
        cfg = getattr(model, "pretrained_cfg", None)
        card = cfg if isinstance(cfg, WeightCard) else None
    return card


def eval_transform_of(model: nn.Module, name: str | None = None) -> EvalTransform:
    """The eval preprocessing for ``model``: its weights' transform; for weights without a
    card (a plain file), that of the registered weights of ``name``; else the default
    (resize 256, centre crop 224, ImageNet mean and std)."""
    card = weight_card_of(model)
    if card is None and name is not None:
        card = get_weights(name)
    return card.transform if card is not None else EvalTransform()


def read_image(path: str | os.PathLike):
    """The RGB ``PIL.Image`` at ``path``; a missing file raises ``FileNotFoundError``, an
    unreadable one ``ValueError``, both naming the path."""
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        return Image.open(path).convert("RGB")
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
