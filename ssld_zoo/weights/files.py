"""Read a weights file of any supported kind into tensors that fit a given zoo architecture.

``.pdparams`` (PaddlePaddle, read safely), ``.pth``/``.pt`` (``torch.load(weights_only=True)``)
and ``.safetensors``. A family file may define ``checkpoint_filter_fn(state) -> state`` to map
foreign key names (the original PyTorch WSL release, PaddleClas 2.0/2.1 names) onto its own;
the registry finds it (:func:`ssld_zoo.registry.checkpoint_filter`).

Every reader refuses, with one line naming the file and the entry, what is not a flat mapping
of names to tensors, and bounds what it allocates: at most the file's size, and (``max_bytes``)
what the target architecture can hold.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ssld_zoo.registry import WeightCard
from ssld_zoo.weights.convert import (
    best_matching_arch,
    cast_half_precision,
    check_state_dict,
    paddle_to_torch,
)
from ssld_zoo.weights.errors import StateDictMismatch, WeightsFileError
from ssld_zoo.weights.pdparams import read_pdparams
from ssld_zoo.weights.settings import settings

__all__ = [
    "load_state_file",
    "read_raw_state",
    "read_safetensors",
    "sidecar_card",
    "state_bytes",
    "SUFFIXES",
]

SUFFIXES = (".pdparams", ".pth", ".pt", ".safetensors")
_WRAPPERS = ("state_dict", "model", "student")  # common checkpoint wrappers


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def state_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s state dict (the meta device counts them without allocating)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def read_raw_state(
    path: Path, max_bytes: int | None = None, kind: str | None = None
) -> dict[str, Any]:
    """The tensors of a file as stored (numpy arrays for .pdparams, torch tensors otherwise).

    ``kind`` is the file type (``".pdparams"``...), by default the file's suffix (a download
    is checked before it gets its name). ``max_bytes`` bounds the tensor data of ``.pdparams``
    and ``.safetensors`` files (a ``.pth`` checkpoint may hold optimizer state besides; it is
    memory-mapped instead and only its state dict is copied out)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if not path.is_file():
        raise WeightsFileError(f"{path}: not a file")
    size, limit = path.stat().st_size, settings().max_file_bytes
    if size > limit:
        raise WeightsFileError(
            f"{path}: {size} bytes, over the SSLD_ZOO_MAX_FILE_BYTES limit of {limit}"
        )
    if size == 0:
        raise WeightsFileError(f"{path}: the file is empty")
    suffix = (kind or path.suffix).lower()
    if suffix == ".pdparams":
        return read_pdparams(path, max_bytes)
    if suffix in (".pth", ".pt"):
        return _read_torch(path)
    if suffix == ".safetensors":
        return read_safetensors(path, max_bytes)[0]
    raise WeightsFileError(
        f"{path}: unsupported weights file type {suffix!r}; expected one of {', '.join(SUFFIXES)}"
    )


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:  # torch.save's format since 1.6, which can be memory-mapped
        zipped = zipfile.is_zipfile(path)
    except zipfile.BadZipFile:  # is_zipfile itself raises on some damaged archives
        zipped = False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except Exception as e:
        raise WeightsFileError(
            f"{path}: cannot be read as a PyTorch weights file "
            f"(torch.load weights_only=True: {_one_line(e)})"
        ) from None
    for key in _WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsFileError(f"{path}: expected a state dict, got {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise WeightsFileError(f"{path}: key {key!r} is a {type(key).__name__}, not a string")
        if not isinstance(value, torch.Tensor):
            raise WeightsFileError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        if value.layout != torch.strided or value.device.type != "cpu":
            raise WeightsFileError(
                f"{path}: entry {key!r} is a {value.layout} tensor on "
                f"{value.device}; expected a dense CPU tensor"
            )
        # Copied out of the mapping, so the model does not depend on the file staying as is.
        out[key] = value.detach().clone()
    return out


def read_safetensors(
    path: Path, max_bytes: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; the header is checked before any tensor
    is read (safetensors validates that its offsets cover the file exactly)."""
    from safetensors import safe_open

    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise WeightsFileError(
            f"{path}: {size} bytes, more than the {max_bytes} bytes of "
            "tensors the architecture holds (a file for a larger model?)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error and several built-in ones
        raise WeightsFileError(
            f"{path}: not a readable safetensors file ({_one_line(e)})"
        ) from None


def load_state_file(
    path: Path, arch: str, model: nn.Module, source: str | None = None, kind: str | None = None
) -> dict[str, torch.Tensor]:
    """Read ``path`` and return the state dict of architecture ``arch``, checked against
    ``model`` (keys, shapes, dtypes, values; see :func:`check_state_dict`); fp16/bf16 tensors
    are cast to the architecture's dtype, with one warning.

    ``source`` names the file in messages (a URL for a download), ``kind`` its type when the
    path does not end in it. A mismatch names the registered architecture the file does fit.
    """
    from ssld_zoo.registry import checkpoint_filter

    path = Path(path)
    label = source or str(path)
    kind = (kind or path.suffix).lower()
    raw = read_raw_state(path, max_bytes=3 * state_bytes(model) + (1 << 20), kind=kind)
    filt = checkpoint_filter(arch)
    if filt is not None:
        raw = filt(raw)
    try:
        if kind == ".pdparams":
            return paddle_to_torch(raw, model, label)
        state = cast_half_precision(raw, model, label)
        check_state_dict(state, model, label)
        return state
    except StateDictMismatch as e:
        fits = best_matching_arch(raw, exclude=arch)
        hint = f"; the file fits the registered architecture {fits!r}" if fits else ""
        if fits and source is None:
            hint += f": ssld_zoo.load({fits!r}, weights={label!r})"
        raise StateDictMismatch(f"{e}{hint}") from None


def sidecar_card(path: Path) -> WeightCard | None:
    """The model card JSON written beside exported weights (``<file>.json``), if present;
    a broken one is a one-line :class:`WeightsFileError` naming it."""
    side = Path(path).with_suffix(Path(path).suffix + ".json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise WeightsFileError(
            f"{side}: not a readable model card ({_one_line(e)}); fix or delete it"
        ) from None
    if isinstance(data, dict):
        data.setdefault("urls", [str(path)])
    try:
        return WeightCard.from_json(data, str(side))
    except (TypeError, ValueError) as e:
        raise WeightsFileError(" ".join(str(e).split())) from None
