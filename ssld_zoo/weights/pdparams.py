"""Read PaddlePaddle ``.pdparams`` files without Paddle, without running their pickles, and
without letting a small file make the reader allocate a large one.

A ``.pdparams`` is a pickle of ``{structured name: numpy array}``. A pickle can name any Python
callable, so plain ``pickle.load`` on a downloaded file can run arbitrary code. The unpickler
below resolves only the few globals numpy needs to rebuild arrays and refuses everything else.

A pickle also declares sizes before the bytes they describe (a frame, a bytes object, an array
shape), and CPython allocates what is declared before reading it. So before unpickling, every
declared length is checked against what is left of the file (a scan of the opcodes that
allocates nothing), the arrays numpy is asked to create are checked against the file size, and
object arrays are refused: memory stays within about twice the file size.
"""

from __future__ import annotations

import math
import os
import pickle
import pickletools
import re
from typing import Any, BinaryIO

import numpy as np

from ssld_zoo.weights.errors import PdparamsError, UnsafePickleError

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
_NUMERIC = "biufc"  # bool, int, uint, float, complex: what a tensor can hold
_MAX_LINE = 1 << 16  # text arguments (GLOBAL names, protocol-0 numbers)


class _Bounded:
    """A file reader that refuses to read past the end of the file, before reading."""

    def __init__(self, f: BinaryIO, size: int, path: str):
        self._f, self._size, self._path = f, size, path

    def tell(self) -> int:
        return self._f.tell()

    def _room(self, n: int, what: str = "bytes") -> None:
        left = self._size - self._f.tell()
        if n > left:
            raise PdparamsError(
                f"{self._path}: declares {n} {what} at byte {self._f.tell()} "
                f"but only {left} bytes of the file remain (truncated or "
                "crafted file)"
            )

    def read(self, n: int) -> bytes:
        self._room(n)
        return self._f.read(n)

    def readline(self) -> bytes:
        line = self._f.readline(_MAX_LINE)
        if len(line) == _MAX_LINE and not line.endswith(b"\n"):
            raise PdparamsError(f"{self._path}: a text argument longer than {_MAX_LINE} bytes")
        return line


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def _scan(f: BinaryIO, size: int, path: str) -> None:
    """Walk the pickle's opcodes (nothing is built or run) and check every declared length
    (bytes, strings, frames) against the bytes left in the file, and every memo index against
    the number of opcodes so far (CPython sizes its memo table by the largest index)."""
    bounded = _Bounded(f, size, path)
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(bounded)):
            if op.name == "FRAME":
                bounded._room(arg, "bytes in a frame")
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > count:
                raise PdparamsError(
                    f"{path}: memo index {arg} at byte {bounded.tell()} is "
                    f"beyond the {count} objects before it (crafted file)"
                )
    except PdparamsError:
        raise
    except Exception as e:  # unknown opcode, truncated argument, ...
        raise PdparamsError(f"{path}: not a readable .pdparams file ({_one_line(e)})") from None


class _Limits:
    """Guards on the callables a .pdparams may use: no array larger than the file, no more
    bytes made in all than about twice the file (a memo reference costs a few bytes of file
    but could name a large object again), no object arrays, only the latin-1 transport."""

    def __init__(self, path: str, size: int):
        self.path, self.size = path, size
        self.budget = 2 * size + (1 << 20)

    def spend(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` made from the file against the budget."""
        if nbytes > self.budget:
            raise PdparamsError(
                f"{self.path}: {what} ({nbytes} bytes) would take more than "
                f"twice the {self.size} bytes of the file (crafted file)"
            )
        self.budget -= nbytes

    def claim(self, shape: Any, dtype: Any) -> None:
        dims = (shape,) if isinstance(shape, int) else shape
        if not isinstance(dims, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims
        ):
            raise PdparamsError(
                f"{self.path}: array shape {shape!r} is not a tuple of non-negative ints"
            )
        try:
            itemsize = max(np.dtype(dtype).itemsize, 1)
        except TypeError:
            itemsize = 1
        nbytes = math.prod(dims) * itemsize
        if nbytes > self.size:
            raise PdparamsError(
                f"{self.path}: declares an array of shape {tuple(dims)} "
                f"({nbytes} bytes), more than the {self.size} bytes this "
                "file can hold"
            )
        self.spend(nbytes, f"an array of shape {tuple(dims)}")

    def reconstruct(self, real):
        def _reconstruct(subtype, shape, dtype):
            if subtype is not np.ndarray and not (
                isinstance(subtype, type) and issubclass(subtype, _Ndarray)
            ):
                raise PdparamsError(f"{self.path}: array subtype {subtype!r} refused")
            self.claim(shape, dtype)
            return real(np.ndarray, shape, dtype)

        return _reconstruct

    def dtype(self, *args: Any) -> np.dtype:
        dt = np.dtype(*args)
        if dt.hasobject or dt.kind not in _NUMERIC:
            raise PdparamsError(f"{self.path}: dtype {dt} is not a numeric tensor type")
        return dt

    def encode(self, text: Any, encoding: str = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
            raise PdparamsError(
                f"{self.path}: _codecs.encode is only allowed on a str with "
                f"latin1, got {type(text).__name__} with {encoding!r}"
            )
        import codecs

        self.spend(len(text), "decoding a string")
        return codecs.encode(text, "latin1")

    def frombuffer(self, real):
        def _frombuffer(buf, dtype, shape, order):
            if not isinstance(buf, (bytes, bytearray)):
                raise PdparamsError(
                    f"{self.path}: _frombuffer needs bytes, got {type(buf).__name__}"
                )
            self.claim(shape, dtype)
            return real(buf, dtype, shape, order)

        return _frombuffer


class _Ndarray(np.ndarray):
    """Stands for ``numpy.ndarray`` in a pickle: as ``_reconstruct``'s subtype argument it
    becomes ndarray; called directly (no numpy pickle does that) it is size-checked."""

    limits: _Limits

    def __new__(cls, shape, dtype=float, *args: Any, **kwargs: Any):
        cls.limits.claim(shape, dtype)
        return np.ndarray(shape, dtype, *args, **kwargs)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, path: str, limits: _Limits):
        super().__init__(file)
        self._path, self._limits = path, limits

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"{self._path}: refused to load global '{module}.{name}': a .pdparams may "
                "only reference numpy's array reconstruction; this file could run code and "
                "was not loaded"
            )
        real = super().find_class(module, name)
        lim = self._limits
        if name == "_reconstruct":
            return lim.reconstruct(real)
        if name == "_frombuffer":
            return lim.frombuffer(real)
        if name == "dtype":
            return lim.dtype
        if name == "encode":
            return lim.encode
        if name == "ndarray":
            return type("ndarray", (_Ndarray,), {"limits": lim})
        return real


def _checked_array(path: str, key: str, value: Any, limits: "_Limits") -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise PdparamsError(f"{path}: entry {key!r} is a {type(value).__name__}, not an array")
    if value.dtype.kind not in _NUMERIC or value.dtype.names is not None:
        raise PdparamsError(
            f"{path}: entry {key!r} has dtype {value.dtype}, not a numeric tensor type"
        )
    if not value.dtype.isnative:
        limits.spend(value.nbytes, f"byte-swapping {key!r}")
        value = value.astype(value.dtype.newbyteorder("="))
    return value


def read_pdparams(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Return the tensors of a ``.pdparams`` file as ``{structured name: ndarray}``.

    Skips PaddlePaddle's bookkeeping entries and re-joins tensors that old protocols split into
    ``name@@.0``, ``name@@.1``, ... pieces. ``max_bytes`` bounds the file size (callers pass
    what the target architecture can hold). Raises :class:`UnsafePickleError` when the pickle
    references anything but numpy's array rebuilding, :class:`PdparamsError` when it is
    truncated, corrupt, declares more than it holds, or is not a dict of numeric arrays.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    if max_bytes is not None and size > max_bytes:
        raise PdparamsError(
            f"{path}: {size} bytes, more than the {max_bytes} bytes of "
            "tensors the architecture holds (a file for a larger model?)"
        )
    with open(path, "rb") as f:
        _scan(f, size, path)
        f.seek(0)
        limits = _Limits(path, size)
        try:
            obj = _RestrictedUnpickler(f, path, limits).load()
        except PdparamsError:
            raise
        except MemoryError:
            raise PdparamsError(f"{path}: ran out of memory reading it ({size} bytes)") from None
        except Exception as e:  # truncated / corrupt pickles raise many different types
            raise PdparamsError(f"{path}: not a readable .pdparams file ({_one_line(e)})") from None
    if not isinstance(obj, dict):
        raise PdparamsError(f"{path}: expected a pickled dict of arrays, got {type(obj).__name__}")

    pieces: dict[str, dict[int, np.ndarray]] = {}
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise PdparamsError(f"{path}: key {key!r} is a {type(key).__name__}, not a string")
        if key in _SKIP_KEYS:
            continue
        value = _checked_array(path, key, value, limits)
        m = re.fullmatch(r"(.+)@@\.(\d+)", key)
        if m:
            pieces.setdefault(m.group(1), {})[int(m.group(2))] = value
        else:
            out[key] = value
    info = obj.get("UnpackBigParamInfor@@", {})
    for key, parts in pieces.items():
        limits.spend(sum(p.nbytes for p in parts.values()), f"joining the pieces of {key!r}")
        flat = np.concatenate([parts[i].reshape(-1) for i in sorted(parts)])
        entry = info.get(key) if isinstance(info, dict) else None
        shape = entry.get("OriginShape") if isinstance(entry, dict) else None
        if shape is None:
            out[key] = flat
            continue
        try:
            out[key] = flat.reshape(tuple(shape))
        except (TypeError, ValueError):
            raise PdparamsError(
                f"{path}: split tensor {key!r} has {flat.size} values, which "
                f"do not make its recorded shape {shape!r}"
            ) from None
    return out


def write_pdparams(state: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write arrays as PaddlePaddle does (a protocol-4 pickle of a dict); for tests and export."""
    with open(path, "wb") as f:
        pickle.dump({k: np.ascontiguousarray(v) for k, v in state.items()}, f, protocol=4)
