"""Map a PaddleClas state dict onto a zoo model, and check any state dict strictly.

The zoo's modules carry PaddleClas's names, so the mapping is mechanical: BatchNorm's
``_mean``/``_variance`` become ``running_mean``/``running_var`` and Linear weights, stored
[in, out] by Paddle, are transposed. What is not mechanical is checking: PaddleClas's own loader
ignores missing and unexpected keys, so a converter must be strict itself. The check covers
keys, shapes, dtypes (those of the architecture: no fp64, complex or integer in place of a
float) and values (finite, BatchNorm variances not negative). Half-precision files (fp16/bf16,
common on model hubs) are cast to the architecture's dtype with one warning, as torch's
``load_state_dict`` copies them (:func:`cast_half_precision`); values that overflowed in half
precision are still refused as non-finite.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn

from ssld_zoo.weights.errors import DtypeCastWarning, StateDictMismatch, WeightValueError

__all__ = [
    "paddle_to_torch",
    "torch_to_paddle",
    "check_state_dict",
    "cast_half_precision",
    "StateDictMismatch",
    "WeightValueError",
    "best_matching_arch",
]

_HALF = (torch.float16, torch.bfloat16)

_SHOWN = 6  # keys listed per kind of problem


def _linear_weight_keys(model: nn.Module) -> set[str]:
    return {
        f"{name}.weight" if name else "weight"
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear)
    }


def _rename(key: str) -> str:
    if key.endswith("._mean"):
        return key[: -len("_mean")] + "running_mean"
    if key.endswith("._variance"):
        return key[: -len("_variance")] + "running_var"
    return key


def paddle_to_torch(
    paddle_state: Mapping[str, np.ndarray], model: nn.Module, source: str = "weights"
) -> dict[str, torch.Tensor]:
    """Convert PaddleClas tensors to ``model``'s state dict, checking it (see
    :func:`check_state_dict`). Nothing is copied before the check passes (views only), so
    a file of other keys costs no memory beyond its own arrays."""
    linear = _linear_weight_keys(model)
    out: dict[str, torch.Tensor] = {}
    for key, value in paddle_state.items():
        tkey = _rename(key)
        t = torch.from_numpy(value if value.flags.writeable else value.copy())
        out[tkey] = t.t() if tkey in linear and t.ndim == 2 else t
    out = cast_half_precision(out, model, source)
    check_state_dict(out, model, source)
    return {k: v.contiguous() for k, v in out.items()}


def torch_to_paddle(model: nn.Module) -> dict[str, np.ndarray]:
    """The inverse mapping: ``model``'s tensors under PaddleClas's names and layouts, ready for
    :func:`~ssld_zoo.weights.pdparams.write_pdparams` (Paddle can then ``set_state_dict`` it)."""
    linear = _linear_weight_keys(model)
    out: dict[str, np.ndarray] = {}
    for key, t in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        arr = t.detach().cpu().numpy()
        if key in linear:
            arr = arr.T
        if key.endswith(".running_mean"):
            key = key[: -len("running_mean")] + "_mean"
        elif key.endswith(".running_var"):
            key = key[: -len("running_var")] + "_variance"
        out[key] = np.ascontiguousarray(arr)
    return out


def _expected(model: nn.Module) -> dict[str, torch.Tensor]:
    # num_batches_tracked is torch bookkeeping with no Paddle counterpart: optional.
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def _listing(label: str, items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}"


def cast_half_precision(
    state: Mapping[str, torch.Tensor], model: nn.Module, source: str = "weights"
) -> dict[str, torch.Tensor]:
    """``state`` with its fp16/bf16 tensors cast to the floating dtype ``model`` holds under
    the same key, and one :class:`DtypeCastWarning` naming ``source`` when any was. Other
    dtypes are left for :func:`check_state_dict` to refuse."""
    full = model.state_dict()
    cast: dict[str, torch.Tensor] = {}
    stored: set[str] = set()
    for key, value in state.items():
        want = full.get(key) if isinstance(key, str) else None
        if (
            isinstance(value, torch.Tensor)
            and want is not None
            and value.dtype in _HALF
            and want.is_floating_point()
            and want.dtype != value.dtype
        ):
            cast[key] = value.to(want.dtype)
            stored.add(str(value.dtype).replace("torch.", ""))
    if not cast:
        return dict(state)
    targets = sorted({str(v.dtype).replace("torch.", "") for v in cast.values()})
    warnings.warn(
        f"{source}: {len(cast)} tensors stored as {', '.join(sorted(stored))}, cast "
        f"to {', '.join(targets)} (the architecture's dtype), as torch's "
        f"load_state_dict does",
        DtypeCastWarning,
        stacklevel=3,
    )
    return {**state, **cast}


def check_state_dict(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    source: str = "weights",
    values: bool = True,
) -> None:
    """Check ``state`` against ``model`` (any device; the meta device costs nothing).

    Raises :class:`StateDictMismatch` (one line) naming missing, unexpected, wrongly shaped and
    wrongly typed keys, and (``values``) :class:`WeightValueError` naming tensors with NaN/Inf
    values or negative BatchNorm variances.
    """
    full = model.state_dict()
    expected = {k: v for k, v in full.items() if not k.endswith("num_batches_tracked")}
    bad_type = [
        f"{k!r} ({type(v).__name__})"
        for k, v in state.items()
        if not isinstance(k, str) or not isinstance(v, torch.Tensor)
    ]
    if bad_type:
        raise StateDictMismatch(f"{source}: {_listing('entries are not tensors', bad_type)}")
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    common = sorted(set(expected) & set(given))
    wrong = [
        f"{k} {list(given[k].shape)} (expected {list(expected[k].shape)})"
        for k in common
        if tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    dtypes = [
        f"{k} {str(v.dtype).replace('torch.', '')} (expected "
        f"{str(full[k].dtype).replace('torch.', '')})"
        for k, v in state.items()
        if k in full and v.dtype != full[k].dtype
    ]
    problems = [
        _listing(label, keys)
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("keys of the wrong shape", wrong),
            ("keys of the wrong dtype", dtypes),
        )
        if keys
    ]
    if problems:
        hint = (
            "; cast the file's tensors to the architecture's dtype (float32) if that is intended"
            if dtypes and not (missing or unexpected or wrong)
            else ""
        )
        raise StateDictMismatch(
            f"{source} do not fit {type(model).__name__}: " + "; ".join(problems) + hint
        )
    if values:
        _check_values(given, model, source)


def _check_values(state: Mapping[str, torch.Tensor], model: nn.Module, source: str) -> None:
    variances = {
        f"{n}.running_var" if n else "running_var"
        for n, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._NormBase)
    }
    bad: list[str] = []
    for key, t in state.items():
        if t.is_floating_point() or t.is_complex():
            n = int((~torch.isfinite(t)).sum())
            if n:
                bad.append(f"{key} has {n} NaN/Inf values")
                continue
        if key in variances and t.numel() and bool((t < 0).any()):
            bad.append(
                f"{key} (a BatchNorm variance) has negative values (min {float(t.min()):.3g})"
            )
    if bad:
        raise WeightValueError(f"{source}: {_listing('tensors no trained weights have', bad)}")


@lru_cache(maxsize=None)
def _arch_shapes(name: str) -> dict[str, torch.Size]:
    from ssld_zoo.registry import get_arch

    with torch.device("meta"):
        return {k: v.shape for k, v in _expected(get_arch(name).builder()).items()}


def best_matching_arch(state: Mapping[str, object], exclude: str | None = None) -> str | None:
    """The registered architecture whose state dict has exactly these keys and shapes, if any.

    Used to tell a user which model a file they passed to the wrong architecture belongs to.
    Candidates are built on the meta device (no memory, no init), so this stays cheap.
    """
    from ssld_zoo.registry import list_architectures

    shapes = {
        _rename(k): tuple(getattr(v, "shape", ()))
        for k, v in state.items()
        if isinstance(k, str) and not k.endswith("num_batches_tracked")
    }
    for name in list_architectures():
        if name == exclude:
            continue
        exp = _arch_shapes(name)
        if (
            len(exp) == len(shapes)
            and set(exp) == set(shapes)
            and all(shapes[k] in (tuple(s), tuple(s)[::-1]) for k, s in exp.items())
        ):
            return name
    return None
