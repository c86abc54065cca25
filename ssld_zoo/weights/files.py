"""Load a weights file of any supported kind into tensors that fit a given zoo model.

``.pdparams`` (PaddlePaddle, read safely), ``.pth``/``.pt`` (``torch.load(weights_only=True)``)
and ``.safetensors``. A family file may define ``checkpoint_filter_fn(state) -> state`` to map
foreign key names (the original PyTorch WSL release, PaddleClas 2.0/2.1 names) onto its own.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn as nn

from ssld_zoo.registry import WeightCard
from ssld_zoo.weights.convert import (StateDictMismatch, best_matching_arch, check_state_dict,
                                      paddle_to_torch)
from ssld_zoo.weights.pdparams import read_pdparams

__all__ = ["load_state_file", "read_raw_state", "sidecar_card", "SUFFIXES"]

SUFFIXES = (".pdparams", ".pth", ".pt", ".safetensors")


def read_raw_state(path: Path) -> dict:
    """The tensors of a file as stored (numpy arrays for .pdparams, torch tensors otherwise)."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".pdparams":
        return read_pdparams(path)
    if suffix in (".pth", ".pt"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: cannot be read as a PyTorch weights file "
                             f"(torch.load weights_only=True: {e})") from e
        for key in ("state_dict", "model", "student"):  # common checkpoint wrappers
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
        return obj
    if suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as e:
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
    raise ValueError(f"{path}: unsupported weights file type {suffix!r}; expected one of "
                     f"{', '.join(SUFFIXES)}")


def load_state_file(path: Path, model: nn.Module) -> tuple[dict[str, torch.Tensor],
                                                           WeightCard | None]:
    """Read ``path`` and return (state dict fitting ``model``, the card saved beside it or None).

    Raises :class:`StateDictMismatch` naming missing, unexpected and mis-shaped keys, and the
    registered architecture the file does fit, if any.
    """
    path = Path(path)
    raw = read_raw_state(path)
    family = sys.modules[type(model).__module__]
    filt = getattr(family, "checkpoint_filter_fn", None)
    if filt is not None:
        raw = filt(raw)
    try:
        if path.suffix.lower() == ".pdparams":
            state = paddle_to_torch(raw, model, str(path))
        else:
            state = {k: v for k, v in raw.items()}
            check_state_dict(state, model, str(path))
    except StateDictMismatch as e:
        own = getattr(model, "arch_name", None)
        fits = best_matching_arch(raw, exclude=own)
        hint = (f"\nThe file fits the registered architecture {fits!r}: "
                f"ssld_zoo.load({fits!r}, weights={str(path)!r})") if fits else ""
        raise StateDictMismatch(f"{e}{hint}") from None
    return state, sidecar_card(path)


def sidecar_card(path: Path) -> WeightCard | None:
    """A model card JSON written beside exported weights (``<file>.json``), if present."""
    side = path.with_suffix(path.suffix + ".json")
    if not side.is_file():
        return None
    from ssld_zoo.registry import EvalTransform
    data = json.loads(side.read_text())
    data = {k: v for k, v in data.items() if k in WeightCard.__dataclass_fields__}
    if "transform" in data:
        data["transform"] = EvalTransform(**{k: tuple(v) if isinstance(v, list) else v
                                             for k, v in data["transform"].items()})
    data["urls"] = tuple(data.get("urls", (str(path),)))
    return WeightCard(**data)
