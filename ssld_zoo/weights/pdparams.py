"""Read PaddlePaddle ``.pdparams`` files without Paddle, and without running their pickles.

A ``.pdparams`` is a pickle of ``{structured name: numpy array}``. A pickle can name any Python
callable, so plain ``pickle.load`` on a downloaded file can run arbitrary code. The unpickler
below resolves only the few globals numpy needs to rebuild arrays and refuses everything else.
"""
from __future__ import annotations

import io
import os
import pickle
import re
from typing import Any

import numpy as np

__all__ = ["read_pdparams", "write_pdparams", "UnsafePickleError", "PdparamsError"]

# (module, name) pairs a .pdparams pickle may reference. numpy moved its internals from
# numpy.core to numpy._core in 2.0; files written by either carry either spelling.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol 2 stores bytes through _codecs.encode(str, 'latin1')
    ("collections", "OrderedDict"),
}
_SKIP_KEYS = ("StructuredToParameterName@@", "UnpackBigParamInfor@@")


class PdparamsError(ValueError):
    """The file is not a readable .pdparams."""


class UnsafePickleError(PdparamsError):
    """The pickle names a callable outside the allow-list (it could run code)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._path}: refused to load global '{module}.{name}': a .pdparams may only "
            "reference numpy's array reconstruction; this file could run code and was not loaded")


def read_pdparams(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Return the tensors of a ``.pdparams`` file as ``{structured name: ndarray}``.

    Skips PaddlePaddle's bookkeeping entries and re-joins tensors that old protocols split into
    ``name@@.0``, ``name@@.1``, ... pieces. Raises :class:`UnsafePickleError` when the pickle
    references anything but numpy's array rebuilding, :class:`PdparamsError` when it is
    truncated, corrupt or not a dict of arrays.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), path).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated / corrupt pickles raise many different types
        raise PdparamsError(f"{path}: not a readable .pdparams file ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise PdparamsError(f"{path}: expected a pickled dict of arrays, got {type(obj).__name__}")

    pieces: dict[str, dict[int, np.ndarray]] = {}
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if key in _SKIP_KEYS:
            continue
        if not isinstance(value, np.ndarray):
            raise PdparamsError(f"{path}: entry {key!r} is a {type(value).__name__}, not an array")
        m = re.fullmatch(r"(.+)@@\.(\d+)", key)
        if m:
            pieces.setdefault(m.group(1), {})[int(m.group(2))] = value
        else:
            out[key] = value
    info = obj.get("UnpackBigParamInfor@@", {})
    for key, parts in pieces.items():
        flat = np.concatenate([parts[i].reshape(-1) for i in sorted(parts)])
        shape = info.get(key, {}).get("OriginShape") if isinstance(info, dict) else None
        out[key] = flat.reshape(shape) if shape is not None else flat
    return out


def write_pdparams(state: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write arrays as PaddlePaddle does (a protocol-4 pickle of a dict); for tests and export."""
    with open(path, "wb") as f:
        pickle.dump({k: np.ascontiguousarray(v) for k, v in state.items()}, f, protocol=4)
