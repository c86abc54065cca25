"""Fusing an eval-mode model into its inference form: same outputs (up to fp32 rounding),
fewer layers.

Two rewrites, both in place:

- **re-parameterisation**: a module with a ``re_parameterize()`` method (PP-LCNetV2's
  ``RepDepthwiseSeparable``, PaddleClas's name for it) merges its parallel training-time
  branches into the one convolution it runs at inference;
- **BatchNorm folding** (:func:`fold_batchnorm`): every BatchNorm that directly follows a
  convolution becomes part of that convolution's weight and bias.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fuse", "fold_batchnorm"]


@torch.no_grad()
def fuse(model: nn.Module, example: torch.Tensor | None = None, check: bool = True) -> nn.Module:
    """Re-parameterise and fold the BatchNorms of an eval-mode ``model``, in place; returns it.

    Args:
        model: an eval-mode zoo model (or any ``nn.Module``), classifier or ``features_only``.
        example: an input to find the conv -> BatchNorm pairs with (see
            :func:`fold_batchnorm`); default: one random image at the model's input size,
            drawn from a private generator (the caller's random stream is untouched).
        check: compare the folded model's output to the unfolded one on ``example``.

    The result runs in any memory format (``model.to(memory_format=torch.channels_last)``
    before or after fusing). Its state dict has fewer keys (the folded BatchNorms are gone):
    save the weights before fusing, fuse after loading.
    """
    _require_eval(model, "fuse")
    # Every module that has the method: a family's top-level re_parameterize may not cover
    # all of its blocks, and PP-LCNetV2's blocks recompute from their branches (idempotent).
    for module in model.modules():
        rep = getattr(module, "re_parameterize", None)
        if callable(rep):
            rep()
    if example is None:
        example = _default_example(model)
    fold_batchnorm(model, example, check=check)
    return model


def _require_eval(model: nn.Module, what: str) -> None:
    # BatchNorms, not model.training: a wrapper's own flag (a features_only model's) may say
    # training while every layer that computes is in eval mode.
    bn = next(
        (
            n
            for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
        ),
        None,
    )
    if bn is not None:
        raise ValueError(
            f"{what} needs an eval-mode model (call model.eval() first): "
            f"BatchNorm {bn or type(model).__name__!r} is in training mode and "
            f"batch statistics cannot be folded"
        )


def _default_example(model: nn.Module) -> torch.Tensor:
    """One random image at the model's input size, on its device, in its dtype."""
    p = next(model.parameters(), None)
    x = torch.randn(1, *_input_size(model), generator=torch.Generator().manual_seed(0))
    return x if p is None else x.to(device=p.device, dtype=p.dtype)


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    """The model's native input (C, H, W): its timm-style ``pretrained_cfg["input_size"]``,
    else its weight card's transform; (3, 224, 224) when unknown."""
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and cfg.get("input_size"):
        return tuple(int(v) for v in cfg["input_size"])
    card = getattr(model, "weight_card", None) or cfg
    size = int(getattr(getattr(card, "transform", None), "input_size", 224))
    return 3, size, size


def _parent(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (root.get_submodule(path) if path else root), leaf


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor, check: bool = True) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into that convolution,
    in place, and replace the BatchNorm with ``nn.Identity``. Returns how many were folded.

    Pairs are found by running ``example`` once and matching each BatchNorm's input tensor to
    the convolution that produced it, so it works for any model built from modules, whatever
    its attribute names. A convolution or BatchNorm called more than once is left alone. With
    ``check``, the folded model's output is compared to the original's; if they differ beyond
    fp32 rounding (a convolution output also read elsewhere, say), nothing is changed and a
    ``RuntimeError`` names the first offending pair.
    """
    _require_eval(model, "fold_batchnorm")
    producer: dict[int, str] = {}  # id(conv output) -> conv name
    calls: dict[str, int] = {}
    pairs: dict[str, str] = {}  # bn name -> conv name
    keep: list[torch.Tensor] = []  # keeps outputs alive so their ids are not reused
    names = {m: n for n, m in model.named_modules()}

    def hook(mod: nn.Module, inputs: tuple, output: Any) -> None:
        name = names[mod]
        calls[name] = calls.get(name, 0) + 1
        if isinstance(mod, nn.Conv2d) and isinstance(output, torch.Tensor):
            producer[id(output)] = name
            keep.append(output)
        elif isinstance(mod, nn.BatchNorm2d) and inputs and isinstance(inputs[0], torch.Tensor):
            conv = producer.get(id(inputs[0]))
            if conv is not None:
                pairs[name] = conv

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))
    ]
    try:
        reference = model(example)
    finally:
        for h in handles:
            h.remove()
    keep.clear()
    convs = {}
    for bn, conv in pairs.items():
        if calls.get(bn) == 1 and calls.get(conv) == 1 and conv not in convs.values():
            convs[bn] = conv
    if not convs:
        return 0
    originals = {}
    for bn_name, conv_name in convs.items():
        bn, conv = model.get_submodule(bn_name), model.get_submodule(conv_name)
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        originals[conv_name] = conv
        originals[bn_name] = bn
        parent, leaf = _parent(model, conv_name)
        setattr(parent, leaf, fuse_conv_bn_eval(conv, bn))
        parent, leaf = _parent(model, bn_name)
        setattr(parent, leaf, nn.Identity())
    if check:
        out = model(example)
        ref, got = _first_tensor(reference), _first_tensor(out)
        scale = float(ref.abs().max()) or 1.0
        err = float((ref.float() - got.float()).abs().max())
        if err > 1e-3 * scale:
            for name, mod in originals.items():  # undo: the model is as it was
                parent, leaf = _parent(model, name)
                setattr(parent, leaf, mod)
            raise RuntimeError(
                f"folding BatchNorm changed the output by {err:.3g} (scale "
                f"{scale:.3g}); left unfolded. A convolution output is read "
                f"by more than its BatchNorm?"
            )
    return len(originals) // 2


def _first_tensor(out: Any) -> torch.Tensor:
    while not isinstance(out, torch.Tensor):
        out = out[0] if isinstance(out, (list, tuple)) else next(iter(out.values()))
    return out
