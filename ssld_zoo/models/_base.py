"""What every zoo architecture provides, and the feature-pyramid wrapper built on it.

A zoo model names its sub-modules exactly as PaddleClas does, so that a ``.pdparams`` file
maps onto it key for key, and implements:

* ``feature_info``: one :class:`~ssld_zoo.registry.FeatureInfo` per stage;
* ``forward_features(x)``: the list of all stage outputs;
* ``forward_head(features)``: those outputs -> logits;
* ``head_names``: the attributes that only the classifier uses (dropped by ``features_only``);
* ``reset_classifier(num_classes)``: a new final layer.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ssld_zoo.registry import FeatureInfo


class Backbone(nn.Module):
    """Base class of the zoo's classification models."""

    feature_info: list[FeatureInfo]
    head_names: tuple[str, ...] = ()
    num_classes: int
    # True where the architecture only runs at its native input size.
    fixed_input_size: bool = False

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_head(self, features: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer with a freshly initialised one for ``num_classes``."""
        raise NotImplementedError


def new_linear(old: nn.Linear | nn.Module, num_classes: int) -> nn.Module:
    """A fresh classifier with the input width of ``old`` (Identity when num_classes is 0)."""
    if num_classes == 0:
        return nn.Identity()
    layer = nn.Linear(old.in_features, num_classes)
    nn.init.normal_(layer.weight, std=0.01)
    nn.init.zeros_(layer.bias)
    return layer


class FeaturePyramid(nn.Module):
    """A zoo backbone without its classifier, returning the stage outputs in ``out_indices``.

    ``feature_info`` lists the selected stages (channels, reduction), in order.
    """

    def __init__(self, model: Backbone, out_indices: Sequence[int] | None = None):
        super().__init__()
        n = len(model.feature_info)
        if out_indices is None:
            out_indices = tuple(range(n))
        out_indices = tuple(int(i) for i in out_indices)
        bad = [i for i in out_indices if not -n <= i < n]
        if bad or not out_indices:
            stages = ", ".join(f"{i}: {f.module} ({f.channels} ch, /{f.reduction})"
                               for i, f in enumerate(model.feature_info))
            raise ValueError(f"out_indices {list(out_indices)} out of range for "
                             f"{type(model).__name__}, which has {n} stages: {stages}")
        self.out_indices = tuple(i % n for i in out_indices)
        for name in model.head_names:
            setattr(model, name, None)  # unused by forward_features; keeps DDP free of idle params
        self.model = model
        self.feature_info = [model.feature_info[i] for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.model.forward_features(x)
        return [feats[i] for i in self.out_indices]
