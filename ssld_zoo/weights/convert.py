"""Map a PaddleClas state dict onto a zoo model, strictly.

The zoo's modules carry PaddleClas's names, so the mapping is mechanical: BatchNorm's
``_mean``/``_variance`` become ``running_mean``/``running_var`` and Linear weights, stored
[in, out] by Paddle, are transposed. What is not mechanical is checking: PaddleClas's own loader
ignores missing and unexpected keys, so a converter must be strict itself.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn

__all__ = ["paddle_to_torch", "torch_to_paddle", "check_state_dict", "StateDictMismatch", "best_matching_arch"]


class StateDictMismatch(ValueError):
    """Keys or shapes of a weights file do not fit the architecture."""


def _linear_weight_keys(model: nn.Module) -> set[str]:
    return {f"{name}.weight" if name else "weight"
            for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def _rename(key: str) -> str:
    if key.endswith("._mean"):
        return key[: -len("_mean")] + "running_mean"
    if key.endswith("._variance"):
        return key[: -len("_variance")] + "running_var"
    return key


def paddle_to_torch(paddle_state: Mapping[str, np.ndarray], model: nn.Module,
                    source: str = "weights") -> dict[str, torch.Tensor]:
    """Convert PaddleClas tensors to ``model``'s state dict, checking every key and shape."""
    linear = _linear_weight_keys(model)
    out: dict[str, torch.Tensor] = {}
    for key, value in paddle_state.items():
        tkey = _rename(key)
        t = torch.from_numpy(np.ascontiguousarray(value))
        if tkey in linear and t.ndim == 2:
            t = t.t().contiguous()
        out[tkey] = t
    check_state_dict(out, model, source)
    return out


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


def _expected(model: nn.Module) -> dict[str, torch.Size]:
    # num_batches_tracked is torch bookkeeping with no Paddle counterpart.
    return {k: v.shape for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def check_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module,
                     source: str = "weights") -> None:
    """Raise :class:`StateDictMismatch` listing missing, unexpected and wrongly shaped keys."""
    expected = _expected(model)
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(expected) & set(given)
                   if tuple(given[k].shape) != tuple(expected[k]))
    if not (missing or unexpected or wrong):
        return
    lines = [f"{source} do not fit {type(model).__name__}:"]
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            lines.append(f"  {len(keys)} {label} keys: {', '.join(keys[:8])}"
                         + (" ..." if len(keys) > 8 else ""))
    if wrong:
        lines.append(f"  {len(wrong)} keys of the wrong shape: " + ", ".join(
            f"{k} {list(given[k].shape)} (expected {list(expected[k])})" for k in wrong[:8])
            + (" ..." if len(wrong) > 8 else ""))
    raise StateDictMismatch("\n".join(lines))


@lru_cache(maxsize=None)
def _arch_shapes(name: str) -> dict[str, torch.Size]:
    from ssld_zoo.registry import get_arch

    with torch.device("meta"):
        return _expected(get_arch(name).builder())


def best_matching_arch(state: Mapping[str, object], exclude: str | None = None) -> str | None:
    """The registered architecture whose state dict has exactly these keys and shapes, if any.

    Used to tell a user which model a file they passed to the wrong architecture belongs to.
    Candidates are built on the meta device (no memory, no init), so this stays cheap.
    """
    from ssld_zoo.registry import list_architectures

    shapes = {_rename(k): tuple(getattr(v, "shape", ())) for k, v in state.items()
              if not k.endswith("num_batches_tracked")}
    for name in list_architectures():
        if name == exclude:
            continue
        exp = _arch_shapes(name)
        if len(exp) == len(shapes) and set(exp) == set(shapes) and all(
                shapes[k] in (tuple(s), tuple(s)[::-1]) for k, s in exp.items()):
            return name
    return None
