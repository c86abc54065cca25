"""The restricted .pdparams reader: real Paddle files read right, hostile pickles run nothing.

Files made by PaddlePaddle itself come from a subprocess in the reference venv (tests marked
``parity``, skipped outside CI without it); the format details (protocol 2, split big tensors,
numpy 1.x module names) and the attacks are built here with plain ``pickle``.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import pickletools
import shlex
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from ssld_zoo.weights.pdparams import (
    PdparamsError,
    UnsafePickleError,
    read_pdparams,
    write_pdparams,
)


def _globals(data: bytes) -> set[str]:
    """'module.name' of every global a pickle references, read from its opcodes (nothing is
    executed). Protocol 4 names globals by two strings on the stack, possibly fetched from the
    memo, hence the small memo emulation."""
    found: set[str] = set()
    strings: list[str] = []
    memo: dict[int, object] = {}
    last: object = None
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
            last = None
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
            last = arg
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            last = memo.get(int(arg))
            if isinstance(last, str):
                strings.append(last)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = last
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = last
        elif op.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]}.{strings[-1]}")
            last = None
        elif op.name != "FRAME":
            last = None
    return found


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn._mean": rng.standard_normal(4).astype(np.float32),
        "fc.weight": rng.standard_normal((4, 5)).astype(np.float32),
        "steps": np.arange(3, dtype=np.int64),
    }


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# --- files written by PaddlePaddle ----------------------------------------------------------

_PADDLE_SCRIPT = r"""
import json, pickle, sys
import numpy as np
import paddle
out, zoo_file = sys.argv[1], sys.argv[2]
paddle.seed(0)
net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4),
                           paddle.nn.Flatten(), paddle.nn.Linear(4, 5))
state = net.state_dict()
paddle.save(state, out + "/p4.pdparams")               # the default (protocol 4)
paddle.save(state, out + "/p2.pdparams", protocol=2)   # what old PaddleClas files use
np.savez(out + "/values.npz", **{k: v.numpy() for k, v in state.items()})
with open(out + "/p4.pdparams", "rb") as f:
    raw_keys = list(pickle.load(f))
back = paddle.load(zoo_file)                            # paddle reads what the zoo writes
np.savez(out + "/zoo_back.npz", **{k: np.asarray(v) for k, v in back.items()})
json.dump({"raw_keys": raw_keys}, open(out + "/meta.json", "w"))
"""


@pytest.fixture(scope="module")
def paddle_files(paddle_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paddle_saved")
    write_pdparams(_arrays(), out / "zoo.pdparams")
    res = subprocess.run(
        [str(paddle_python), "-c", _PADDLE_SCRIPT, str(out), str(out / "zoo.pdparams")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.mark.parity
@pytest.mark.parametrize("name", ["p4.pdparams", "p2.pdparams"])
def test_reads_paddle_saved_file(paddle_files: Path, name: str) -> None:
    with np.load(paddle_files / "values.npz") as f:
        want = dict(f)
    assert any(k.endswith("_variance") for k in want)  # BN statistics are in the file
    _assert_same(read_pdparams(paddle_files / name), want)


@pytest.mark.parity
def test_paddle_file_bookkeeping_is_skipped(paddle_files: Path) -> None:
    raw = json.loads((paddle_files / "meta.json").read_text())["raw_keys"]
    assert "StructuredToParameterName@@" in raw
    assert "StructuredToParameterName@@" not in read_pdparams(paddle_files / "p4.pdparams")


@pytest.mark.parity
def test_paddle_protocol2_file_uses_codecs_encode(paddle_files: Path) -> None:
    # Otherwise the protocol-2 case above would not exercise the _codecs.encode path.
    assert "_codecs.encode" in _globals((paddle_files / "p2.pdparams").read_bytes())


@pytest.mark.parity
def test_paddle_reads_what_write_pdparams_writes(paddle_files: Path) -> None:
    with np.load(paddle_files / "zoo_back.npz") as f:
        _assert_same(dict(f), _arrays())


# --- format details, without paddle ---------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    write_pdparams(_arrays(), tmp_path / "a.pdparams")
    _assert_same(read_pdparams(tmp_path / "a.pdparams"), _arrays())


def test_protocol2_with_codecs_encode(tmp_path: Path) -> None:
    data = pickle.dumps(_arrays(), protocol=2)
    assert "_codecs.encode" in _globals(data)
    (tmp_path / "p2.pdparams").write_bytes(data)
    _assert_same(read_pdparams(tmp_path / "p2.pdparams"), _arrays())


def test_numpy1_module_names(tmp_path: Path) -> None:
    """Files pickled under numpy 1.x name ``numpy.core.multiarray``; numpy 2 ``numpy._core``."""
    data = pickle.dumps(_arrays(), protocol=2)  # GLOBAL opcodes: plain text, safe to rewrite
    old = data.replace(b"numpy._core.", b"numpy.core.")
    assert old != data and "numpy.core.multiarray._reconstruct" in _globals(old)
    (tmp_path / "np1.pdparams").write_bytes(old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2's numpy.core shim
        got = read_pdparams(tmp_path / "np1.pdparams")
    _assert_same(got, _arrays())


def test_split_big_tensor_pieces_are_joined(tmp_path: Path) -> None:
    """Paddle's protocol 2/3 writer splits tensors over 1 GiB into ``name@@.N`` slices and
    records them in ``UnpackBigParamInfor@@`` (paddle/framework/io_utils.py,
    ``_unpack_saved_dict``); the same layout, with small slices."""
    big = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    flat = big.reshape(-1)
    obj = {
        "small": np.ones(3, np.float32),
        "big@@.0": flat[:10],
        "big@@.1": flat[10:20],
        "big@@.2": flat[20:],
        "UnpackBigParamInfor@@": {
            "big": {"OriginShape": big.shape, "slices": ["big@@.0", "big@@.1", "big@@.2"]}
        },
        "StructuredToParameterName@@": {"small": "param_0", "big": "param_1"},
    }
    (tmp_path / "split.pdparams").write_bytes(pickle.dumps(obj, protocol=2))
    got = read_pdparams(tmp_path / "split.pdparams")
    assert sorted(got) == ["big", "small"]
    np.testing.assert_array_equal(got["big"], big)


# --- hostile and broken files ---------------------------------------------------------------


class _Payload:
    """Unpickling an instance calls ``func(*args)``: what a malicious .pdparams does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _attacks(marker: Path) -> dict[str, object]:
    return {
        "os.system": _Payload(os.system, f"touch {shlex.quote(str(marker))}"),
        "builtins.open": _Payload(builtins.open, str(marker), "w"),
        "builtins.exec": _Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("attack", ["os.system", "builtins.open", "builtins.exec"])
def test_refuses_pickle_that_would_run_code(tmp_path: Path, attack: str, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = _attacks(marker)[attack]
    # Hidden among real tensors, as an attacker would.
    data = pickle.dumps({**_arrays(), "evil": payload}, protocol=protocol)
    refs = _globals(data) - {g for g in _globals(data) if g.startswith(("numpy", "_codecs"))}
    assert len(refs) == 1
    ref = refs.pop()  # e.g. posix.system: pickle records os.system under its real module
    path = tmp_path / "evil.pdparams"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as err:
        read_pdparams(path)
    assert f"'{ref}'" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists(), "the pickle's payload ran"


def test_unsafe_error_is_a_pdparams_error(tmp_path: Path) -> None:
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(_Payload(os.getcwd), protocol=4))
    with pytest.raises(PdparamsError, match="posix.getcwd|os.getcwd"):
        read_pdparams(path)


@pytest.mark.parametrize("keep", [0, 1, 100, 0.5])
def test_truncated_file(tmp_path: Path, keep) -> None:
    full = tmp_path / "full.pdparams"
    write_pdparams(_arrays(), full)
    data = full.read_bytes()
    cut = tmp_path / "cut.pdparams"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(PdparamsError) as err:
        read_pdparams(cut)
    assert str(cut) in str(err.value)


def test_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pdparams"
    path.write_bytes(pickle.dumps([np.zeros(2)], protocol=4))
    with pytest.raises(PdparamsError, match="dict"):
        read_pdparams(path)


def test_entry_not_an_array(tmp_path: Path) -> None:
    path = tmp_path / "str.pdparams"
    path.write_bytes(pickle.dumps({"fc.weight": np.zeros(2), "fc.bias": "oops"}, protocol=4))
    with pytest.raises(PdparamsError, match="fc.bias"):
        read_pdparams(path)
