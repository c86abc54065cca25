"""Property-based fuzzing of the weight readers (hypothesis): random bytes and random damage
(flipped bytes, truncation, spliced garbage) to valid ``.pdparams`` (protocols 2 and 4),
``.pth`` and ``.safetensors`` files. Whatever the input, a reader returns a flat mapping of
names to numeric tensors or raises a :class:`WeightsFileError` (one line, naming the file);
never another exception, never code run, and never much more memory than the file.
"""

from __future__ import annotations

import io
import pickle
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ssld_zoo
from ssld_zoo.weights.errors import WeightsFileError
from ssld_zoo.weights.files import SUFFIXES, read_raw_state

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_DIR = Path(tempfile.mkdtemp(prefix="ssld_fuzz_"))


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn._variance": rng.random(4).astype(np.float32),
        "fc.weight": rng.standard_normal((4, 5)).astype(np.float32),
        "UnpackBigParamInfor@@": {},
        "StructuredToParameterName@@": {"a": "b"},
    }


def _valid(kind: str) -> bytes:
    arrays = _arrays()
    if kind in ("p2", "p4"):
        return pickle.dumps(arrays, protocol=2 if kind == "p2" else 4)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items() if isinstance(v, np.ndarray)}
    if kind == "pth":
        buf = io.BytesIO()
        torch.save(tensors, buf)
        return buf.getvalue()
    from safetensors.torch import save

    return save(tensors)


SEEDS = {k: _valid(k) for k in ("p2", "p4", "pth", "st")}
SUFFIX = {"p2": ".pdparams", "p4": ".pdparams", "pth": ".pth", "st": ".safetensors"}


def _read(data: bytes, suffix: str):
    path = _DIR / f"fuzz{suffix}"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        out = read_raw_state(path)
    except WeightsFileError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg, msg
        out = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 16 * len(data) + (8 << 20), (peak, len(data))
    if out is not None:
        assert isinstance(out, dict)
        for k, v in out.items():
            assert isinstance(k, str)
            if isinstance(v, np.ndarray):
                assert v.dtype.kind in "biufc" and v.dtype.isnative
            else:
                assert isinstance(v, torch.Tensor) and v.layout == torch.strided
    return out


def _damage(seed: bytes, edits, cut, splice) -> bytes:
    data = bytearray(seed)
    for pos, byte in edits:
        data[pos % len(data)] = byte
    if splice:
        at = (cut or 0) % (len(data) + 1)
        data[at:at] = splice
    elif cut is not None:
        del data[cut % (len(data) + 1) :]
    return bytes(data)


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(data, suffix):
    _read(data, suffix)


@FUZZ
@given(
    kind=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 1 << 20),
    splice=st.binary(max_size=64),
)
def test_damaged_valid_files(kind, edits, cut, splice):
    _read(_damage(SEEDS[kind], edits, cut, splice), SUFFIX[kind])


@FUZZ
@given(
    prefix=st.binary(max_size=32),
    count=st.integers(0, 1 << 62),
    op=st.sampled_from([b"\x8e", b"\x8d", b"\x95", b"\x96", b"B", b"X", b"T", b"\x8a", b"\x8b"]),
)
def test_declared_sizes(prefix, count, op):
    """Length-prefixed opcodes (bytes8, unicode8, frame, bytearray8, binbytes, binunicode,
    binstring, long1, long4) with any declared size after any prefix."""
    width = 8 if op in (b"\x8e", b"\x8d", b"\x95", b"\x96") else 1 if op == b"\x8a" else 4
    body = op + (count % (1 << (8 * width))).to_bytes(width, "little") + b"xyz."
    _read(b"\x80\x04" + prefix + body, ".pdparams")


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory) -> bytes:
    from ssld_zoo.weights.convert import torch_to_paddle
    from ssld_zoo.weights.pdparams import write_pdparams

    path = tmp_path_factory.mktemp("zoo") / "m.pdparams"
    write_pdparams(torch_to_paddle(ssld_zoo.load("mobilenetv1_x0_25", pretrained=False)), path)
    return path.read_bytes()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=st.lists(st.tuples(st.integers(0, 1 << 22), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 1 << 22),
)
def test_damaged_zoo_file_through_load(zoo_file, edits, cut):
    """The whole path of ssld_zoo.load(weights=FILE): it loads, or fails with one line."""
    path = _DIR / "zoo.pdparams"
    path.write_bytes(_damage(zoo_file, edits, cut, b""))
    try:
        ssld_zoo.load("mobilenetv1_x0_25", weights=path)
    except WeightsFileError as e:
        assert "\n" not in str(e) and str(path) in str(e)
