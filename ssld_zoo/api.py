"""The public Python API: ``load``, ``model_info``, ``transforms``, ``class_names``.

``load(name)`` -> registry lookup -> build the architecture -> resolve the weights (converted
cache, else download + convert + cache) -> strict ``load_state_dict`` -> eval-mode model.
"""
from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from ssld_zoo.models._base import FeaturePyramid
from ssld_zoo.registry import EvalTransform, WeightCard, get_arch, get_weights
from ssld_zoo.weights import hub
from ssld_zoo.weights.files import load_state_file, sidecar_card

__all__ = ["load", "model_info", "transforms", "class_names"]


def load(name: str, pretrained: bool = True, weights: str | os.PathLike | None = None,
         num_classes: int | None = None, features_only: bool = False,
         out_indices: Sequence[int] | None = None, **kwargs: Any) -> nn.Module:
    """Build a zoo model, with weights, in eval mode.

    Args:
        name: an architecture (``'resnet50_vd'``) or weight name (``'resnet50_vd_ssld'``);
            see :func:`ssld_zoo.list_models`.
        pretrained: load the published weights of ``name`` (for an architecture name:
            PaddleClas's baseline weights). Ignored when ``weights`` is given.
        weights: a ``.pdparams``, ``.pth``/``.pt`` or ``.safetensors`` file, or a registered
            weight name, to load into the architecture of ``name`` instead.
        num_classes: replace the classifier by a new one with this many outputs (the backbone
            keeps its weights).
        features_only: return a :class:`~ssld_zoo.models._base.FeaturePyramid` whose forward
            gives the stage outputs as a list, with ``feature_info`` (channels, reduction).
        out_indices: which stages ``features_only`` returns (default: all).
        **kwargs: passed to the architecture's constructor.

    The returned model has a ``pretrained_cfg`` attribute: the :class:`WeightCard` of the loaded
    weights, or None.
    """
    arch = get_arch(name)
    card: WeightCard | None = None
    if weights is None and pretrained:
        card = get_weights(name)
        if card is None:
            raise ValueError(f"{name!r} has no published weights: use pretrained=False, or "
                             f"weights=PATH. Names with weights: ssld-zoo list {name}*")
    if weights is not None and os.path.isfile(weights):
        # An exported student (say a 10-class digits model) says its head size in its card.
        side = sidecar_card(Path(weights))
        if side is not None and side.num_classes != 1000:
            kwargs.setdefault("num_classes", side.num_classes)
    if weights is None and not pretrained:
        model = arch.builder(**kwargs)
        model.arch_name = arch.name
    else:
        # Weights replace every parameter: build on the meta device (no random init, the
        # slow part of building) and adopt the loaded tensors.
        with torch.device("meta"):
            model = arch.builder(**kwargs)
        model.arch_name = arch.name
        if weights is not None:
            state, card = _state_for(model, weights)
        else:
            state = _registered_state(card, model)
        model = _adopt(model, state, lambda: arch.builder(**kwargs))
        model.arch_name = arch.name
    model.pretrained_cfg = card
    model.eval()
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    if features_only:
        model = FeaturePyramid(model, out_indices)
        model.pretrained_cfg = card
    return model


def _state_for(model: nn.Module, weights: str | os.PathLike
               ) -> tuple[dict[str, torch.Tensor], WeightCard | None]:
    """The checked tensors of a file or registered weight name, and its card if any."""
    text = os.fspath(weights)
    if not os.path.exists(text) and text in _registered_names():
        card = get_weights(text)
        return _registered_state(card, model), card
    return load_state_file(Path(text), model)


def _adopt(model: nn.Module, state: dict[str, torch.Tensor], rebuild) -> nn.Module:
    """Give a meta-device ``model`` the (already checked) tensors of ``state``.

    Only BatchNorm's ``num_batches_tracked`` may be absent from a file (Paddle has no such
    counter): it starts at zero. A model with other buffers computed at construction
    (non-persistent ones) is rebuilt normally instead, so nothing is left uninitialised.
    """
    model.load_state_dict(state, strict=False, assign=True)
    for module in model.modules():
        for key, buf in module._buffers.items():
            if buf is not None and buf.is_meta:
                if key != "num_batches_tracked":
                    model = rebuild()
                    model.load_state_dict(state, strict=False)
                    return model
                module._buffers[key] = torch.zeros((), dtype=torch.long)
    return model


def _registered_names() -> set[str]:
    from ssld_zoo.registry import list_weights
    return {c.name for c in list_weights()}


def _registered_state(card: WeightCard, model: nn.Module) -> dict[str, torch.Tensor]:
    """The converted tensors of a registered weight: from the safetensors cache when present,
    else downloaded, converted and cached so that the next call converts nothing."""
    from safetensors.torch import load_file, save_file
    from ssld_zoo.weights.convert import check_state_dict

    converted = hub.converted_path(card)
    if converted.exists():
        state = load_file(str(converted))
        check_state_dict(state, model, str(converted))
        return state
    raw = hub.download(card.urls, card.sha256)
    state, _ = load_state_file(raw, model)
    hub.atomic_write(converted, lambda tmp: save_file(
        {k: v.contiguous() for k, v in state.items()}, str(tmp),
        metadata={"weights": card.name, "source": card.urls[0]}))
    return state


def model_info(name: str) -> dict[str, Any]:
    """The model card of a name as a dict: architecture, weights, accuracy, transforms, size.

    Parameters and GMACs are counted on a 1x3xSxS input with torch's own FLOP counter
    (multiply-adds; S = the weight's input size)."""
    arch = get_arch(name)
    card = get_weights(name)
    info: dict[str, Any] = {"name": name, "architecture": arch.name,
                            "paddle_name": arch.paddle_name, "family": arch.family}
    info.update(complexity(arch.name, (card.transform if card else EvalTransform()).input_size))
    info["weights"] = card.to_dict() if card else None
    return info


@lru_cache(maxsize=None)
def complexity(arch_name: str, input_size: int = 224) -> dict[str, float]:
    """Parameters (millions) and GMACs of an architecture at ``input_size``.

    Runs on the meta device: shapes only, so even the 800M-parameter teachers cost nothing."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = get_arch(arch_name).builder().eval()
        x = torch.zeros(1, 3, input_size, input_size)
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    # FlopCounterMode counts a multiply-add as 2 FLOPs.
    return {"params_m": params / 1e6, "gmacs": counter.get_total_flops() / 2e9,
            "input_size": input_size}


def transforms(name: str):
    """The eval transform of ``name``'s weights (resize, centre crop, normalise)."""
    get_arch(name)  # raises a helpful KeyError for unknown names
    card = get_weights(name)
    return (card.transform if card else EvalTransform()).build()


@lru_cache(maxsize=None)
def class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in PaddleClas's (= the standard) index order."""
    text = resources.files("ssld_zoo").joinpath("data/imagenet1k_classes.txt").read_text()
    return text.splitlines()
