"""Export a trained student: ``<name>.safetensors`` + its model card ``<name>.safetensors.json``.

The card's top-level fields are a subset of :class:`ssld_zoo.registry.WeightCard`'s (name, arch,
urls, top1, top1_source, teacher, transform, description, num_classes, key_format, license), so
``ssld_zoo.load(arch, weights=PATH)`` attaches it as ``model.weight_card``; everything else
about the run (recipe, data, schedule, metrics per epoch) sits under ``"training"``, which the
loader ignores.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ssld_zoo.weights.fileops import atomic_write

__all__ = ["export_student", "card_path"]


def card_path(weights: str | os.PathLike) -> Path:
    """The sidecar card of a weights file: ``<file>.json`` (``x.safetensors.json``)."""
    p = Path(weights)
    return p.with_suffix(p.suffix + ".json")


def export_student(state: dict[str, torch.Tensor], out: str | os.PathLike, *, name: str,
                   arch: str, num_classes: int, transform: dict[str, Any],
                   top1: float | None = None, top1_source: str = "", teacher: str | None = None,
                   description: str = "", training: dict[str, Any] | None = None) -> Path:
    """Write ``state`` as safetensors at ``out`` and its card beside it (both atomically)."""
    from safetensors.torch import save_file
    out = Path(out)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    atomic_write(out, lambda tmp: save_file(tensors, str(tmp), metadata={
        "format": "pt", "weights": name, "arch": arch}))
    card = {
        "name": name, "arch": arch, "urls": [out.name], "top1": top1,
        "top1_source": top1_source, "teacher": teacher, "num_classes": num_classes,
        "key_format": "torch", "license": "Apache-2.0", "description": description,
        "transform": {k: list(v) if isinstance(v, tuple) else v for k, v in transform.items()},
        "training": training or {},
    }
    text = json.dumps(card, indent=2, default=str) + "\n"
    atomic_write(card_path(out), lambda tmp: Path(tmp).write_text(text))
    return out
