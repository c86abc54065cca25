"""Untrusted weight files: crafted pickles and ``.pdparams`` that try to allocate far more than
they hold, wrong key/value types, dtypes the architecture does not have, non-finite values and
negative BatchNorm variances, truncated files, broken model cards, wrong argument types, and
``ssld-zoo convert`` never overwriting its input. Each case is a one-line error naming the
file, the entry and what was expected (or the correct result), and memory stays small.
"""

from __future__ import annotations

import codecs
import os
import pickle
import struct
import time
import tracemalloc

import numpy as np
import pytest
import torch

import ssld_zoo
from ssld_zoo.weights.errors import (
    PdparamsError,
    StateDictMismatch,
    UnsafePickleError,
    WeightsFileError,
    WeightValueError,
)
from ssld_zoo.weights.files import read_raw_state, sidecar_card
from ssld_zoo.weights.pdparams import read_pdparams

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

ARCH = "mobilenetv1_x0_25"


class Reduce:
    """Unpickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def peak_bytes(fn) -> tuple[int, BaseException | None]:
    """Peak Python-level allocation (bytes objects, numpy buffers) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        err = None
    except Exception as e:
        err = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, err


@pytest.fixture(scope="module")
def zoo_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = ssld_zoo.load(ARCH, pretrained=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k, v in state.items():
        if k.endswith("running_var"):
            v.uniform_(0.5, 1.5)
    return state


def save_st(tmp_path, state, name="w.safetensors"):
    from safetensors.torch import save_file

    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


# --- memory bombs ------------------------------------------------------------------------------

GiB = 1 << 30


@pytest.mark.parametrize("case", ["bytes8", "frame", "unicode8"])
def test_declared_length_beyond_the_file_is_refused_before_allocating(tmp_path, case):
    body = {
        "bytes8": b"\x8e" + struct.pack("<Q", 64 * GiB) + b"abc",
        "frame": b"\x95" + struct.pack("<Q", 64 * GiB) + b"}.",
        "unicode8": b"\x8d" + struct.pack("<Q", 64 * GiB) + b"abc",
    }[case]
    path = write(tmp_path, "bomb.pdparams", b"\x80\x04" + body)
    peak, err = peak_bytes(lambda: read_pdparams(path))
    assert isinstance(err, PdparamsError) and "\n" not in str(err)
    what = "bytes in a frame" if case == "frame" else "bytes"
    assert str(err) == (
        f"{path}: declares {64 * GiB} {what} at byte 11 but only "
        f"{path.stat().st_size - 11} bytes of the file remain (truncated or "
        "crafted file)"
    )
    assert peak < 1 << 20


@pytest.mark.parametrize(
    "make",
    [
        lambda: Reduce(_reconstruct, np.ndarray, (10**10,), b"b"),
        lambda: Reduce(np.ndarray, (10**10,), "f4"),
        lambda: Reduce(_reconstruct, np.ndarray, (10**5, 10**5), b"b"),
    ],
    ids=["reconstruct", "ndarray", "two-dims"],
)
def test_arrays_larger_than_the_file_are_refused_before_allocating(tmp_path, make):
    path = write(tmp_path, "bomb.pdparams", pickle.dumps({"w": make()}, protocol=4))
    peak, err = peak_bytes(lambda: read_pdparams(path))
    assert isinstance(err, PdparamsError), err
    assert f"{path}: declares an array of shape" in str(err)
    assert f"more than the {path.stat().st_size} bytes this file can hold" in str(err)
    assert peak < 1 << 20


def test_a_huge_memo_index_is_refused(tmp_path):
    # CPython sizes (and zeroes) its memo table by the largest index a pickle names.
    path = write(tmp_path, "memo.pdparams", b"\x80\x02}r" + struct.pack("<I", 2**31) + b".")
    peak, err = peak_bytes(lambda: read_pdparams(path))
    assert isinstance(err, PdparamsError) and peak < 1 << 20
    assert str(err) == (
        f"{path}: memo index {2**31} at byte 8 is beyond the 2 objects before it (crafted file)"
    )


def test_memo_references_cannot_multiply_the_file(tmp_path):
    n = 1 << 20  # one 1 MiB string, decoded again and again through memo references
    data = (
        b"\x80\x02c_codecs\nencode\nq\x00X"
        + struct.pack("<I", n)
        + b"a" * n
        + b"q\x01X\x06\x00\x00\x00latin1q\x02]("
        + b"h\x00h\x01h\x02\x86R" * 50
        + b"e."
    )
    path = write(tmp_path, "amp.pdparams", data)
    peak, err = peak_bytes(lambda: read_pdparams(path))
    assert isinstance(err, PdparamsError), err
    assert str(err) == (
        f"{path}: decoding a string ({n} bytes) would take more than twice "
        f"the {len(data)} bytes of the file (crafted file)"
    )
    assert peak < 6 * n


def test_a_sparse_file_fails_at_once(tmp_path):
    path = tmp_path / "sparse.pdparams"
    with open(path, "wb") as f:
        f.truncate(8 * GiB)  # 8 GiB of holes: nothing on disk
    start = time.monotonic()
    peak, err = peak_bytes(lambda: read_pdparams(path))
    assert isinstance(err, PdparamsError) and "opcode" in str(err)
    assert time.monotonic() - start < 2 and peak < 1 << 20


def test_a_sparse_file_with_a_valid_header_is_bounded_by_the_architecture(tmp_path):
    path = tmp_path / "sparse.pdparams"
    with open(path, "wb") as f:  # declares a 4 GiB bytes object, which the holes "hold"
        f.write(b"\x80\x04\x8e" + struct.pack("<Q", 4 * GiB))
        f.truncate(4 * GiB + 64)
    peak, err = peak_bytes(lambda: ssld_zoo.load(ARCH, weights=path))
    assert isinstance(err, PdparamsError), err
    assert str(err).startswith(f"{path}: {4 * GiB + 64} bytes, more than the ")
    assert str(err).endswith("bytes of tensors the architecture holds (a file for a larger model?)")
    assert peak < 16 << 20


def test_file_size_limit(tmp_path, monkeypatch, zoo_state):
    monkeypatch.setenv("SSLD_ZOO_MAX_FILE_BYTES", "1000")
    path = save_st(tmp_path, zoo_state)
    with pytest.raises(WeightsFileError) as e:
        ssld_zoo.load(ARCH, weights=path)
    assert one_line(e) == (
        f"{path}: {path.stat().st_size} bytes, over the SSLD_ZOO_MAX_FILE_BYTES limit of 1000"
    )


# --- crafted pickles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, dtype",
    [
        (np.array([1, "a"], dtype=object), "object"),
        (np.array(["ab"]), "<U2"),
        (np.zeros(2, dtype=[("a", "f4")]), "[('a', '<f4')]"),
    ],
)
def test_non_numeric_arrays_are_refused(tmp_path, value, dtype):
    path = write(tmp_path, "odd.pdparams", pickle.dumps({"w": value}, protocol=4))
    with pytest.raises(PdparamsError) as e:
        read_pdparams(path)
    msg = one_line(e)
    assert (
        msg.startswith(f"{path}: ")
        and "is not a numeric tensor type" in msg
        or f"entry 'w' has dtype {dtype}, not a numeric tensor type" in msg
    )


def test_codecs_encode_is_only_the_latin1_transport(tmp_path):
    path = write(
        tmp_path,
        "enc.pdparams",
        pickle.dumps({"w": Reduce(codecs.encode, "x" * 10, "utf-32")}, protocol=2),
    )
    with pytest.raises(PdparamsError) as e:
        read_pdparams(path)
    assert one_line(e) == (
        f"{path}: _codecs.encode is only allowed on a str with latin1, got str with 'utf-32'"
    )


def test_code_running_globals_are_still_refused(tmp_path):
    marker = tmp_path / "ran"
    path = write(
        tmp_path,
        "evil.pdparams",
        pickle.dumps({"w": Reduce(os.system, f"touch {marker}")}, protocol=4),
    )
    with pytest.raises(UnsafePickleError) as e:
        read_pdparams(path)
    assert "refused to load global 'posix.system'" in one_line(e) and not marker.exists()


def test_wrong_key_and_value_types_in_a_pdparams(tmp_path):
    path = write(tmp_path, "k.pdparams", pickle.dumps({5: np.zeros(2)}, protocol=4))
    with pytest.raises(PdparamsError) as e:
        read_pdparams(path)
    assert one_line(e) == f"{path}: key 5 is a int, not a string"
    path = write(tmp_path, "v.pdparams", pickle.dumps({"fc.weight": [1.0, 2.0]}, protocol=4))
    with pytest.raises(PdparamsError) as e:
        read_pdparams(path)
    assert one_line(e) == f"{path}: entry 'fc.weight' is a list, not an array"


def test_big_endian_arrays_are_read_correctly(tmp_path):
    want = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = write(tmp_path, "be.pdparams", pickle.dumps({"w": want.astype(">f4")}, protocol=4))
    got = read_pdparams(path)["w"]
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, want)


def test_split_tensor_with_a_wrong_recorded_shape(tmp_path):
    obj = {
        "big@@.0": np.zeros(4, np.float32),
        "big@@.1": np.zeros(4, np.float32),
        "UnpackBigParamInfor@@": {"big": {"OriginShape": (3, 3)}},
    }
    path = write(tmp_path, "split.pdparams", pickle.dumps(obj, protocol=2))
    with pytest.raises(PdparamsError) as e:
        read_pdparams(path)
    assert one_line(e) == (
        f"{path}: split tensor 'big' has 8 values, which do not make its recorded shape (3, 3)"
    )


# --- .pth and .safetensors -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
@pytest.mark.parametrize(
    "obj, message",
    [
        ({"fc.weight": [1.0, 2.0]}, "entry 'fc.weight' is a list, not a tensor"),
        ({3: torch.zeros(2)}, "key 3 is a int, not a string"),
        ([torch.zeros(1)], "expected a state dict, got list"),
        (
            {"w": torch.zeros(3).to_sparse()},
            "entry 'w' is a torch.sparse_coo tensor on cpu; expected a dense CPU tensor",
        ),
        ({"state_dict": {"w": "text"}}, "entry 'w' is a str, not a tensor"),
    ],
)
def test_wrong_types_in_a_pth(tmp_path, obj, message):
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    with pytest.raises(WeightsFileError) as e:
        read_raw_state(path)
    assert one_line(e) == f"{path}: {message}"


@pytest.mark.parametrize("name", ["w.pth", "w.safetensors", "w.pdparams"])
def test_truncated_files(tmp_path, zoo_state, name):
    from ssld_zoo.weights.convert import torch_to_paddle
    from ssld_zoo.weights.pdparams import write_pdparams

    full = tmp_path / ("full" + name[1:])
    if name.endswith(".pth"):
        torch.save(zoo_state, full)
    elif name.endswith(".safetensors"):
        save_st(tmp_path, zoo_state, full.name)
    else:
        m = ssld_zoo.load(ARCH, pretrained=False)
        write_pdparams(torch_to_paddle(m), full)
    path = write(tmp_path, name, full.read_bytes()[: full.stat().st_size * 2 // 3])
    with pytest.raises(WeightsFileError) as e:
        ssld_zoo.load(ARCH, weights=path)
    msg = one_line(e)
    assert msg.startswith(f"{path}: ")
    assert any(
        t in msg
        for t in (
            "cannot be read as a PyTorch weights file",
            "not a readable safetensors file",
            "but only",
            "not a readable .pdparams file",
        )
    ), msg


def test_unsupported_suffix_and_empty_file(tmp_path):
    path = write(tmp_path, "w.bin", b"data")
    with pytest.raises(WeightsFileError) as e:
        ssld_zoo.load(ARCH, weights=path)
    assert one_line(e) == (
        f"{path}: unsupported weights file type '.bin'; expected one of "
        ".pdparams, .pth, .pt, .safetensors"
    )
    path = write(tmp_path, "e.safetensors", b"")
    with pytest.raises(WeightsFileError, match=r"e.safetensors: the file is empty$"):
        ssld_zoo.load(ARCH, weights=path)


# --- dtypes and values against the architecture --------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex64, torch.int64])
def test_dtypes_other_than_the_architectures_are_refused(tmp_path, zoo_state, dtype):
    state = dict(zoo_state, **{"fc.weight": zoo_state["fc.weight"].to(dtype)})
    path = save_st(tmp_path, state)
    with pytest.raises(StateDictMismatch) as e:
        ssld_zoo.load(ARCH, weights=path)
    name = str(dtype).replace("torch.", "")
    assert one_line(e) == (
        f"{path} do not fit MobileNetV1: 1 keys of the wrong dtype: "
        f"fc.weight {name} (expected float32); cast the file's tensors to "
        "the architecture's dtype (float32) if that is intended"
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_cast_to_the_architectures_dtype_with_one_warning(
    tmp_path, zoo_state, dtype
):
    """Hub files often store fp16/bf16: loaded by casting, as torch's load_state_dict does."""
    half = {k: v.to(dtype) if v.is_floating_point() else v for k, v in zoo_state.items()}
    path = save_st(tmp_path, half)
    with pytest.warns(UserWarning) as caught:
        model = ssld_zoo.load(ARCH, weights=path)
    casts = [w for w in caught if "cast" in str(w.message)]
    name = str(dtype).replace("torch.", "")
    assert len(casts) == 1 and str(casts[0].message).startswith(
        f"{path}: {sum(v.is_floating_point() for v in zoo_state.values())} tensors stored as "
        f"{name}, cast to float32"
    )
    got = model.state_dict()
    for k, v in half.items():
        assert got[k].dtype == zoo_state[k].dtype and torch.equal(got[k], v.to(got[k].dtype)), k


def test_half_precision_weights_that_overflowed_stay_refused(tmp_path, zoo_state):
    state = dict(zoo_state, **{"fc.weight": (zoo_state["fc.weight"] * 1e9).half()})  # inf
    path = save_st(tmp_path, state)
    with (
        pytest.raises(WeightValueError, match=r"fc.weight has \d+ NaN/Inf values"),
        pytest.warns(UserWarning, match="cast to float32"),
    ):
        ssld_zoo.load(ARCH, weights=path)


def test_fp16_pdparams_is_cast_too(tmp_path):
    from ssld_zoo.weights.convert import torch_to_paddle
    from ssld_zoo.weights.pdparams import write_pdparams

    model = ssld_zoo.load(ARCH, pretrained=False)
    state = torch_to_paddle(model)
    path = tmp_path / "f16.pdparams"
    write_pdparams({k: v.astype(np.float16) for k, v in state.items()}, path)
    with pytest.warns(UserWarning, match=r"tensors stored as float16, cast to float32"):
        loaded = ssld_zoo.load(ARCH, weights=path)
    w = model.state_dict()["fc.weight"]
    assert torch.equal(loaded.state_dict()["fc.weight"], w.half().float())


def test_fp64_pdparams_is_refused_too(tmp_path):
    from ssld_zoo.weights.convert import torch_to_paddle
    from ssld_zoo.weights.pdparams import write_pdparams

    state = torch_to_paddle(ssld_zoo.load(ARCH, pretrained=False))
    path = tmp_path / "f64.pdparams"
    write_pdparams({k: v.astype(np.float64) for k, v in state.items()}, path)
    with pytest.raises(
        StateDictMismatch,
        match=r"keys of the wrong dtype: .* float64 "
        r"\(expected float32\)",
    ):
        ssld_zoo.load(ARCH, weights=path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("fc.weight", float("nan"), "fc.weight has 1 NaN/Inf values"),
        ("fc.bias", float("inf"), "fc.bias has 1 NaN/Inf values"),
        (
            "blocks.0.depthwise_conv.bn.running_var",
            -1.0,
            "blocks.0.depthwise_conv.bn.running_var (a BatchNorm variance) has negative values "
            "(min -1)",
        ),
    ],
)
def test_values_no_trained_weights_have(tmp_path, zoo_state, key, value, message):
    state = {k: v.clone() for k, v in zoo_state.items()}
    state[key].view(-1)[0] = value
    path = save_st(tmp_path, state)
    with pytest.raises(WeightValueError) as e:
        ssld_zoo.load(ARCH, weights=path)
    assert one_line(e) == f"{path}: 1 tensors no trained weights have: {message}"


def test_mismatch_messages_are_one_line(tmp_path, zoo_state):
    state = {k: v for k, v in zoo_state.items() if not k.startswith("blocks.3.")}
    state["extra.weight"] = torch.zeros(2)
    path = save_st(tmp_path, state)
    with pytest.raises(StateDictMismatch) as e:
        ssld_zoo.load(ARCH, weights=path)
    msg = one_line(e)
    assert msg.startswith(f"{path} do not fit MobileNetV1: 10 missing keys: blocks.3.")
    assert "; 1 unexpected keys: extra.weight" in msg


# --- model cards beside a file ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "{broken",
            "not a readable model card (JSONDecodeError: Expecting property name enclosed "
            "in double quotes: line 1 column 2 (char 1)); fix or delete it",
        ),
        ("[1, 2]", "a model card must be a JSON object, got list"),
        (
            '{"name": "x", "arch": "a", "num_classes": "ten"}',
            "'num_classes' is 'ten'; expected a positive int",
        ),
        (
            '{"name": "x", "arch": "a", "transform": [224]}',
            "'transform': expected an object, got list",
        ),
        (
            '{"name": "x", "arch": "a", "transform": {"size": 3}}',
            "'transform': unknown key(s) size; valid: input_size, resize, interpolation, mean, std",
        ),
        (
            '{"name": "x", "arch": "a", "transform": {"resize": "big"}}',
            "'transform': transform resize='big': expected an integer >= 1",
        ),
        ('{"arch": "a"}', "no 'name'"),
    ],
)
def test_broken_model_cards(tmp_path, zoo_state, text, message):
    path = save_st(tmp_path, zoo_state)
    side = tmp_path / "w.safetensors.json"
    side.write_text(text)
    with pytest.raises(WeightsFileError) as e:
        sidecar_card(path)
    assert one_line(e) == f"{side}: {message}"
    with pytest.raises(WeightsFileError):
        ssld_zoo.load(ARCH, weights=path)


# --- wrong argument types ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, 123, ["resnet50_vd"]])
def test_load_with_a_name_that_is_not_a_string(name):
    with pytest.raises(TypeError) as e:
        ssld_zoo.load(name)
    assert one_line(e) == (
        f"a model name must be a str such as 'resnet50_vd_ssld', got "
        f"{name!r} ({type(name).__name__})"
    )


@pytest.mark.parametrize("weights", [123, 1.5, b"w.pth", ["w.pth"]])
def test_weights_that_are_not_a_name_path_or_url(weights):
    with pytest.raises(TypeError) as e:
        ssld_zoo.load(ARCH, weights=weights)
    assert one_line(e) == (
        f"weights must be a registered weight name, a file path or a URL, "
        f"got {weights!r} ({type(weights).__name__})"
    )


def test_weights_that_name_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^weights file .*nope.pth does not exist$"):
        ssld_zoo.load(ARCH, weights=tmp_path / "nope.pth")
    with pytest.raises(
        ValueError,
        match=r"neither a registered weight name, an existing file "
        r"nor a URL; did you mean: mobilenetv1_x0_25",
    ):
        ssld_zoo.load(ARCH, weights="mobilenetv1_x0_26")
    with pytest.raises(ValueError, match="weights is an empty string"):
        ssld_zoo.load(ARCH, weights="")
    with pytest.raises(WeightsFileError, match=r": not a file$"):
        ssld_zoo.load(ARCH, weights=tmp_path)


# --- ssld-zoo convert ---------------------------------------------------------------------------


def test_convert_never_overwrites_its_input(tmp_path, zoo_state, capsys):
    from ssld_zoo.cli.main import main

    path = save_st(tmp_path, zoo_state)
    before = path.read_bytes()
    assert main(["convert", str(path), "--model", ARCH]) == 1
    err = capsys.readouterr().err
    assert f"{path} is the input file: converting would overwrite it" in " ".join(err.split())
    assert path.read_bytes() == before
    out = tmp_path / "copy.safetensors"
    assert main(["convert", str(path), "--model", ARCH, "-o", str(out)]) == 0
    assert read_raw_state(out).keys() == read_raw_state(path).keys()


def test_convert_reports_bad_files_in_one_line(tmp_path, zoo_state, capsys):
    from ssld_zoo.cli.main import main

    state = {k: v.clone() for k, v in zoo_state.items()}
    state["fc.weight"][0, 0] = float("nan")
    path = save_st(tmp_path, state, "nan.safetensors")
    assert main(["convert", str(path), "--model", ARCH, "-o", str(tmp_path / "o.safetensors")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: ") and "fc.weight has 1 NaN/Inf values" in err
    assert not (tmp_path / "o.safetensors").exists()
