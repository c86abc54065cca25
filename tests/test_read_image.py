"""Reading images for predict, export and training (``ssld_zoo.preprocess.decode_image``):
16-bit files scaled to 8 bits, pixel limits and undecodable files as one-line errors naming the
file; the training reader skips them instead (``ssld_zoo.data.images.read_image``)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from ssld_zoo.data.images import read_image as train_read
from ssld_zoo.data.images import read_pixels
from ssld_zoo.preprocess import decode_image

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _png16(path: Path, a: np.ndarray) -> Path:
    """A 16-bit PNG written by hand (grey, grey+alpha, RGB or RGBA from the last axis)."""
    a = a if a.ndim == 3 else a[..., None]
    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def _expected(a16: np.ndarray) -> np.ndarray:
    return np.rint(a16.astype(np.float64) * 255 / 65535).astype(np.uint8)


def test_16_bit_grey_png_is_scaled_not_white(tmp_path):
    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    img = np.asarray(decode_image(_png16(tmp_path / "g.png", ramp)))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 0], _expected(ramp))
    assert 120 < img.mean() < 135  # was 254.5: everything over 255 clipped to white


@pytest.mark.parametrize("fmt", ["png", "tiff", "pgm"])
def test_16_bit_grey_in_every_container(tmp_path, fmt):
    a = np.array([[0, 257, 32896], [65535, 1000, 60000]], dtype=np.uint16)
    path = tmp_path / f"g.{fmt}"
    if fmt == "pgm":  # Pillow opens 16-bit PGM as mode I
        path.write_bytes(b"P5 3 2 65535\n" + a.astype(">u2").tobytes())
    else:
        Image.fromarray(a).save(path)
    np.testing.assert_array_equal(np.asarray(decode_image(path))[..., 0], _expected(a))


def test_16_bit_rgb_and_alpha_pngs_keep_their_colours(tmp_path):
    a = np.array([[[65535, 32768, 0], [0, 65535, 4096]]], dtype=np.uint16)
    rgb = np.asarray(decode_image(_png16(tmp_path / "rgb.png", a))).astype(int)
    assert np.abs(rgb - _expected(a).astype(int)).max() <= 1
    la = np.stack([a[..., 1], np.full_like(a[..., 1], 65535)], -1)
    grey = np.asarray(decode_image(_png16(tmp_path / "la.png", la))).astype(int)
    assert np.abs(grey[..., 0] - _expected(a[..., 1]).astype(int)).max() <= 1


def test_float_and_32_bit_images(tmp_path):
    f = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(f).save(tmp_path / "f.tif")
    assert np.asarray(decode_image(tmp_path / "f.tif"))[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0.0, 2.5]], dtype=np.float32)).save(tmp_path / "hdr.tif")
    with pytest.raises(ValueError) as e:
        decode_image(tmp_path / "hdr.tif")
    assert str(e.value) == (
        f"cannot read image {tmp_path / 'hdr.tif'}: float pixels in "
        f"[0, 2.5]; expected [0, 1] (convert it to 8 or 16 bits)"
    )
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "i32.tif")
    with pytest.raises(ValueError) as e:
        decode_image(tmp_path / "i32.tif")
    assert str(e.value) == (
        f"cannot read image {tmp_path / 'i32.tif'}: 32-bit integer pixels "
        f"in [0, 70000]; expected 16-bit values in [0, 65535] (convert it "
        f"to 8 or 16 bits)"
    )


@pytest.mark.parametrize(
    "pixels,over",
    [
        (1001, "31x33 = 1023 pixels"),  # Pillow only warns
        (400, "1023 pixels"),
    ],
)  # Pillow refuses
def test_pixel_limit_is_a_clear_error(tmp_path, monkeypatch, caplog, pixels, over):
    path = tmp_path / "big.png"
    Image.new("L", (31, 33)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels)
    with pytest.raises(ValueError) as e:
        decode_image(path)
    assert str(e.value) == (
        f"cannot read image {path}: {over} is over the limit of {pixels} "
        f"pixels (PIL.Image.MAX_IMAGE_PIXELS, a decompression-bomb guard; "
        f"raise it only for files you trust)"
    )
    with caplog.at_level("WARNING", logger="ssld_zoo.distill"):
        assert train_read(str(path)) is None  # training skips it, naming it
    assert f"skipping unreadable image: cannot read image {path}: {over}" in caplog.text
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1023)
    assert decode_image(path).size == (31, 33)  # at the limit: fine


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"^image {tmp_path / 'no.png'} does not exist$"):
        decode_image(tmp_path / "no.png")
    (tmp_path / "t.jpg").write_text("hello")
    with pytest.raises(ValueError) as e:
        decode_image(tmp_path / "t.jpg")
    assert str(e.value) == (
        f"cannot read image {tmp_path / 't.jpg'}: UnidentifiedImageError: "
        f"cannot identify image file '{tmp_path / 't.jpg'}'"
    )


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are bytes")
def test_non_utf8_file_name_is_read_and_named(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # not UTF-8: a surrogate in Python's str
    Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / name)
    assert np.asarray(decode_image(tmp_path / name))[0, 0].tolist() == [10, 20, 30]
    (tmp_path / os.fsdecode(b"bad\xe9.png")).write_bytes(b"junk")
    with pytest.raises(ValueError) as e:
        decode_image(tmp_path / os.fsdecode(b"bad\xe9.png"))
    str(e.value).encode("utf-8")  # printable as is: the byte is shown as \xe9
    assert "bad\\xe9.png" in str(e.value)


@FUZZ
@given(arrays(np.uint16, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_fuzz_16_bit_grey_reads_as_rounded_8_bit(tmp_path, a):
    path = tmp_path / "f.png"
    Image.fromarray(a).save(path)
    np.testing.assert_array_equal(np.asarray(decode_image(path))[..., 0], _expected(a))


FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "PPM", "ICO", "TGA")


def _valid(fmt: str, _cache: dict = {}) -> bytes:  # noqa: B006 (a cache)
    if fmt not in _cache:
        buf = io.BytesIO()
        Image.new("RGB", (7, 5), (1, 2, 3)).save(buf, fmt)
        _cache[fmt] = buf.getvalue()
    return _cache[fmt]


def _damaged(fmt: str) -> st.SearchStrategy[bytes]:
    """A real file of ``fmt``, cut short or with bytes changed: the decoders' error paths."""
    n = len(_valid(fmt))
    changed = st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=8)).map(
        lambda t: _valid(fmt)[: t[0]] + t[1] + _valid(fmt)[t[0] + len(t[1]) :]
    )
    return st.one_of(changed, st.integers(0, n - 1).map(lambda k: _valid(fmt)[:k]))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on corrupt TIFF tags
@FUZZ
@given(st.one_of(st.binary(max_size=300), st.sampled_from(FORMATS).flatmap(_damaged)))
def test_fuzz_any_bytes_give_an_image_or_a_one_line_value_error(tmp_path, data):
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    try:
        img = decode_image(path)
    except ValueError as e:
        assert str(e).startswith(f"cannot read image {path}: ") and "\n" not in str(e)
        assert train_read(str(path)) is None
        assert read_pixels(str(path)) is None  # the tensor reader refuses what Pillow refuses
    else:
        assert img.mode == "RGB"
        assert train_read(str(path)).mode == "RGB"
        assert torch.equal(read_pixels(str(path)), pil_to_tensor(img))  # and reads the same


def _pil_pixels(path: Path) -> torch.Tensor:
    return pil_to_tensor(decode_image(path))


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_training_reader_gives_pillows_pixels_for_every_jpeg_mode(tmp_path, mode):
    """RGB and grey JPEGs decode through torchvision, CMYK through Pillow: the same pixels."""
    a = np.random.default_rng(0).integers(0, 255, (37, 53, len(mode)), np.uint8)
    path = tmp_path / f"{mode}.jpg"
    Image.fromarray(a[..., 0] if mode == "L" else a, mode).save(path, quality=90)
    x = read_pixels(str(path))
    assert x.dtype == torch.uint8 and x.shape == (3, 37, 53)
    assert torch.equal(x, _pil_pixels(path))


def test_training_reader_on_real_photos_and_other_formats(tmp_path, test_data):
    for p in sorted((test_data / "coco_mini" / "images" / "val").glob("*.jpg"))[:3]:
        assert torch.equal(read_pixels(str(p)), _pil_pixels(p))
    Image.new("RGB", (9, 7), (10, 20, 30)).save(tmp_path / "a.png")
    assert read_pixels(str(tmp_path / "a.png"))[:, 0, 0].tolist() == [10, 20, 30]


def test_training_reader_skips_truncated_and_oversized_jpegs(tmp_path, monkeypatch, caplog):
    path = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buf, "JPEG"
    )
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # no end marker
    with caplog.at_level("WARNING", logger="ssld_zoo.data"):
        assert read_pixels(str(path)) is None
    assert f"skipping unreadable image: cannot read image {path}" in caplog.text
    path.write_bytes(buf.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 - 1)
    assert read_pixels(str(path)) is None  # over the limit: refused before decoding
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)
    assert read_pixels(str(path)).shape == (3, 64, 64)
    assert read_pixels(str(tmp_path / "missing.jpg")) is None
