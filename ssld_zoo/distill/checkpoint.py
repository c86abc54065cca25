"""mmengine checkpoints that load under torch's ``weights_only=True`` default.

mmengine 0.10.7 pickles its message hub (``HistoryBuffer`` objects, whose state holds numpy
arrays and bound methods reached through ``getattr``) and numpy scalars into every checkpoint,
then loads with a plain ``torch.load``: since torch 2.6 that load is refused. Allow-listing
``getattr`` would open the unpickler to arbitrary code, so instead :class:`SafeCheckpointHook`
rewrites those objects into tensors, numbers and dicts just before a checkpoint is written and
rebuilds them just after one is read. The project's checkpoints therefore load with
``weights_only=True`` and nothing is allow-listed globally. :func:`mmengine_safe_globals` covers
the remaining numpy types for the duration of a load only (checkpoints written by plain
mmengine still fail, with torch's message, which is the point).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch
from mmengine.hooks import Hook

__all__ = ["SafeCheckpointHook", "to_safe", "from_safe", "mmengine_safe_globals"]

_HB, _ND = "__ssld_history_buffer__", "__ssld_ndarray__"


def to_safe(obj: Any) -> Any:
    """``obj`` with HistoryBuffers, numpy arrays and numpy scalars replaced by weights_only-
    loadable stand-ins (tagged dicts of tensors, Python numbers)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if isinstance(obj, HistoryBuffer):
        log, count = obj.data
        return {_HB: True, "log": torch.from_numpy(np.array(log, dtype=np.float64)),
                "count": torch.from_numpy(np.array(count, dtype=np.float64)),
                "max_length": int(obj.max_length)}
    if isinstance(obj, np.ndarray):
        return {_ND: torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return type(obj)((k, to_safe(v)) for k, v in obj.items()) \
            if type(obj) is not dict else {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    return obj


def from_safe(obj: Any) -> Any:
    """Inverse of :func:`to_safe`."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if isinstance(obj, dict):
        if obj.get(_HB) is True:
            return HistoryBuffer(obj["log"].numpy(), obj["count"].numpy(), obj["max_length"])
        if _ND in obj and len(obj) == 1:
            return obj[_ND].numpy()
        return {k: from_safe(v) for k, v in obj.items()} if type(obj) is dict else \
            type(obj)((k, from_safe(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_safe(v) for v in obj)
    return obj


class SafeCheckpointHook(Hook):
    """Make every checkpoint weights_only-loadable (runs after all other hooks have added to it)."""

    priority = "LOWEST"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ("state_dict", "optimizer"):
                checkpoint[key] = to_safe(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ("state_dict", "optimizer"):
                checkpoint[key] = from_safe(checkpoint[key])


@contextlib.contextmanager
def mmengine_safe_globals() -> Iterator[None]:
    """Allow, for the duration of the block only, the plain numpy types (arrays, dtypes) that
    may still sit in a checkpoint's optimizer or scheduler state; never ``getattr`` or code."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    allowed = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    with torch.serialization.safe_globals(allowed):
        yield
