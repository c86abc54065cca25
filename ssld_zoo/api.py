"""The public Python API: ``load``, ``model_info``, ``transforms``, ``class_names``.

``load(name)`` -> registry lookup -> build the architecture on the meta device -> the checked
tensors from :func:`ssld_zoo.weights.source.load_weights` (the one seam for weights: converted
cache, else download + validate + convert + cache) -> adopted -> eval-mode model.
"""

from __future__ import annotations

import os
from functools import lru_cache, partial
from importlib import resources
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from ssld_zoo.models._base import Backbone, FeaturePyramid, adapt_input_conv
from ssld_zoo.registry import EvalTransform, WeightCard, get_arch, get_weights, list_weights
from ssld_zoo.weights.files import sidecar_card
from ssld_zoo.weights.source import Source, load_weights, parse_source

__all__ = ["load", "model_info", "transforms", "class_names", "pretrained_cfg"]


def load(
    name: str,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
    in_chans: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Build a zoo model, with weights, in eval mode (as ``timm.create_model`` does).

    Args:
        name: an architecture (``'resnet50_vd'``) or weight name (``'resnet50_vd_ssld'``);
            see :func:`ssld_zoo.list_models`.
        pretrained: load the published weights of ``name`` (for an architecture name:
            PaddleClas's baseline weights). Ignored when ``weights`` is given.
        weights: a ``.pdparams``, ``.pth``/``.pt`` or ``.safetensors`` file, a registered
            weight name, or a URL, to load into the architecture of ``name`` instead.
        num_classes: replace the classifier by a new one with this many outputs (the backbone
            keeps its weights); 0 removes it (``forward`` returns pooled features).
        features_only: return a :class:`~ssld_zoo.models._base.FeaturePyramid` whose forward
            gives the outputs of the stages in ``out_indices`` as a list, holding (and
            running) only the stages up to the last of them; ``feature_info`` says each one's
            channels, reduction and module.
        out_indices: which stages ``features_only`` returns: a sequence of indices, or an int
            ``n`` for the last ``n`` stages (timm's reading); default all.
        in_chans: input channels; with weights, the first convolution's RGB filters are
            adapted as timm does (summed for 1 channel, repeated and rescaled for more).
        **kwargs: passed to the architecture's constructor (``drop_rate``, ``drop_path_rate``
            where the family has them; see the family's class).

    The returned model has timm's ``pretrained_cfg`` dict (input size, crop_pct,
    interpolation, mean, std, first_conv, classifier, ...), also without weights, and
    ``weight_card``: the :class:`WeightCard` of the loaded weights, or None.

    A student distilled from a non-zoo model (``timm/<model>``, ``torchvision/<model>``,
    ``package.module:function``: the ``arch`` of its card) loads back with
    ``load(arch, weights=<export>.safetensors)``.
    """
    from ssld_zoo.foreign import is_foreign

    if is_foreign(name):
        return _load_foreign(name, weights, num_classes, pretrained, **kwargs)
    arch = get_arch(name)
    if features_only and num_classes:
        raise ValueError(
            f"features_only=True returns stage outputs, not a classifier: "
            f"num_classes={num_classes!r} has no meaning there"
        )
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0
    ):
        raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
    card: WeightCard | None = None
    if weights is None and pretrained:
        card = get_weights(name)
        if card is None:
            raise ValueError(
                f"{name!r} has no published weights: use pretrained=False, or "
                f"weights=PATH. Names with weights: ssld-zoo list {name}*"
            )
    source: Source | WeightCard | None = parse_source(weights) if weights is not None else card
    if isinstance(source, Source) and source.kind == "file" and source.path is not None:
        # An exported student (say a 10-class digits model) says its head size in its card.
        side = sidecar_card(source.path)
        if side is not None and side.num_classes != 1000:
            kwargs.setdefault("num_classes", side.num_classes)
    build = partial(_build, arch, kwargs)
    if weights is None and not pretrained:
        model = build(in_chans=in_chans)
    else:
        # Weights replace every parameter: build on the meta device (no random init, the
        # slow part of building) and adopt the loaded tensors.
        with torch.device("meta"):
            model = build()
        assert source is not None  # weights given, or pretrained with a card (checked above)
        loaded = load_weights(source, arch.name, fits=model)
        model = _adopt(model, loaded.state, build)
        card = loaded.card
        if in_chans != 3:
            _adapt_first_conv(model, in_chans)
    model.arch_name = arch.name
    model.weight_card = card
    model.eval()
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    model.pretrained_cfg = pretrained_cfg(model, card, in_chans, transform=_default_transform(name))
    if features_only:
        return FeaturePyramid(model, out_indices).eval()
    return model


def _build(arch, kwargs: dict[str, Any], **extra: Any) -> Backbone:
    """The architecture's model; a keyword it does not take is a one-line ValueError."""
    try:
        return arch.builder(**kwargs, **extra)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        raise ValueError(
            f"{arch.name}: {e}; the keywords it takes are the arguments of its "
            f"class in ssld_zoo/models/{arch.family}.py"
        ) from None


def _adapt_first_conv(model: nn.Module, in_chans: int) -> None:
    name, conv = _first_conv(model)
    padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)
    new = nn.Conv2d(
        in_chans,
        conv.out_channels,
        _pair(conv.kernel_size),
        _pair(conv.stride),
        padding,
        _pair(conv.dilation),
        conv.groups,
        conv.bias is not None,
        conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(adapt_input_conv(conv.weight, in_chans))
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    # A Conv2d keeps its sizes as tuple[int, ...]; its constructor is typed for pairs.
    return value[0], value[1]


def _first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no convolution")


def _default_card(name: str) -> WeightCard | None:
    """The weights that describe ``name`` when none are loaded (timm's default pretrained
    tag): the name's own, else its architecture's SSLD weights, else any of its weights."""
    card = get_weights(name)
    if card is not None:
        return card
    arch = get_arch(name).name
    cards = [c for c in list_weights() if c.arch == arch]
    return next((c for c in cards if c.name == f"{arch}_ssld"), cards[0] if cards else None)


def _default_transform(name: str) -> EvalTransform:
    card = _default_card(name)
    return card.transform if card is not None else EvalTransform()


def pretrained_cfg(
    model: Backbone,
    card: WeightCard | None = None,
    in_chans: int = 3,
    transform: EvalTransform | None = None,
) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` dict for a zoo model: what ``timm.data.resolve_data_config``
    and code written for timm read (input size, crop, interpolation, mean, std, first conv,
    classifier), from the weight card; without one, from ``transform`` (``load`` passes the
    default weights' eval transform, as timm's cfg of an unloaded model has) or the default."""
    tf = card.transform if card is not None else (transform or EvalTransform())
    classifier = model.get_classifier()
    names = {m: n for n, m in model.named_modules()}
    return {
        "architecture": getattr(model, "arch_name", type(model).__name__),
        "tag": card.name if card is not None else "",
        "url": card.urls[0] if card is not None else "",
        "file": "",
        "hf_hub_id": None,
        "num_classes": model.num_classes,
        "input_size": (in_chans, tf.input_size, tf.input_size),
        "fixed_input_size": bool(model.fixed_input_size),
        "interpolation": tf.interpolation,
        "crop_pct": tf.input_size / tf.resize,
        "crop_mode": "center",
        "mean": tuple(tf.mean),
        "std": tuple(tf.std),
        "pool_size": (max(tf.input_size // 32, 1),) * 2,
        "first_conv": _first_conv(model)[0],
        "classifier": names.get(classifier, ""),
        "license": card.license if card is not None else "Apache-2.0",
        "top1": card.top1 if card is not None else None,
        "teacher": card.teacher if card is not None else None,
    }


def _adopt(
    model: Backbone, state: dict[str, torch.Tensor], rebuild: Callable[[], Backbone]
) -> Backbone:
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


def model_info(name: str) -> dict[str, Any]:
    """The model card of a name as a dict: architecture, weights, accuracy, transforms, size.

    Parameters and GMACs are counted on a 1x3xSxS input with torch's own FLOP counter
    (multiply-adds; S = the weight's input size)."""
    arch = get_arch(name)
    card = get_weights(name)
    info: dict[str, Any] = {
        "name": name,
        "architecture": arch.name,
        "paddle_name": arch.paddle_name,
        "family": arch.family,
    }
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
    return {
        "params_m": params / 1e6,
        "gmacs": counter.get_total_flops() / 2e9,
        "input_size": input_size,
    }


def transforms(name: str):
    """The eval transform of ``name``'s weights (resize, centre crop, normalise); for an
    architecture without weights of its own, that of its default (SSLD) weights."""
    return _default_transform(name).build()


@lru_cache(maxsize=None)
def class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in PaddleClas's (= the standard) index order."""
    text = resources.files("ssld_zoo").joinpath("data/imagenet1k_classes.txt").read_text()
    return text.splitlines()


def _load_foreign(
    name: str,
    weights: str | os.PathLike | None,
    num_classes: int | None,
    pretrained: bool,
    **kwargs: Any,
) -> nn.Module:
    """A non-zoo model (:mod:`ssld_zoo.foreign`) with an exported safetensors file and its card
    (the card's ``num_classes`` unless given), in eval mode, ``weight_card`` attached; without
    ``weights``, with its library's own pretrained weights (``pretrained``) or none."""
    import json
    from pathlib import Path

    from ssld_zoo.foreign import create_foreign
    from ssld_zoo.registry import WeightCard

    if weights is None:
        model = create_foreign(name, num_classes, pretrained=pretrained, **kwargs)
        setattr(model, "weight_card", None)  # a foreign module declares no such attribute
        return model.eval()
    path = Path(weights)
    if path.suffix != ".safetensors" or not path.is_file():
        raise ValueError(f"{path}: expected an exported .safetensors file (ssld-zoo distill)")
    card = None
    sidecar = path.with_suffix(path.suffix + ".json")
    if sidecar.is_file():
        card = WeightCard.from_json(json.loads(sidecar.read_text()), str(sidecar))
    classes = num_classes if num_classes is not None else (card.num_classes if card else None)
    model = create_foreign(name, classes, **kwargs)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)), strict=True)
    setattr(model, "weight_card", card)
    return model.eval()
