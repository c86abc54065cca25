"""Bad input to ``ssld-zoo predict`` and ``ssld-zoo distill``: each is one line on stderr
naming the file, key or value, and exit status 1 (or it is handled correctly)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ssld_zoo
from ssld_zoo.cli.main import main

ARCH = "mobilenetv3_small_x0_35"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "w.pth"
    torch.save(ssld_zoo.load(ARCH, pretrained=False).state_dict(), path)
    return path


def _predict(weights: Path, *args: str) -> list[str]:
    return ["predict", ARCH, *args, "--weights", str(weights)]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err[len("error: ") : -1]


@pytest.mark.parametrize("topk", ["0", "-3"])
def test_predict_topk_below_one_is_an_error(tmp_path, capsys, weights, topk):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert main(_predict(weights, str(tmp_path / "a.png"), "--topk", topk)) == 1
    assert (
        _one_line_error(capsys) == f"--topk {topk}: expected a positive number of classes to show"
    )


def test_predict_reads_16_bit_png_like_its_8_bit_twin(tmp_path, capsys, weights):
    rng = np.random.default_rng(0)
    a16 = rng.integers(0, 65536, (40, 40), dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "g16.png")
    a8 = np.rint(a16 * (255 / 65535)).astype(np.uint8)
    Image.fromarray(a8).save(tmp_path / "g8.png")
    assert main(_predict(weights, str(tmp_path / "g16.png"), "--topk", "3")) == 0
    rows16 = [r for r in capsys.readouterr().out.splitlines() if r.startswith("│")]
    assert main(_predict(weights, str(tmp_path / "g8.png"), "--topk", "3")) == 0
    assert len(rows16) == 3
    assert [r for r in capsys.readouterr().out.splitlines() if r.startswith("│")] == rows16


def test_predict_decompression_bomb_is_one_line(tmp_path, capsys, weights, monkeypatch):
    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own refusal (> 2x)
    assert main(_predict(weights, str(tmp_path / "bomb.png"))) == 1
    assert _one_line_error(capsys) == (
        f"cannot read image {tmp_path / 'bomb.png'}: 4096 pixels is over the limit of 1000 "
        f"pixels (PIL.Image.MAX_IMAGE_PIXELS, a decompression-bomb guard; raise it only for "
        f"files you trust)"
    )


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are bytes")
def test_predict_non_utf8_file_names(tmp_path, capsys, weights):
    good = tmp_path / os.fsdecode(b"caf\xe9.png")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(good)
    assert main(_predict(weights, str(good), "--topk", "2")) == 0
    assert "caf\\xe9.png" in capsys.readouterr().out
    bad = tmp_path / os.fsdecode(b"bro\xffken.jpg")
    bad.write_bytes(b"junk")
    assert main(_predict(weights, str(bad))) == 1
    assert _one_line_error(capsys).startswith(f"cannot read image {tmp_path}/bro\\xffken.jpg: ")


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are bytes")
def test_unlabeled_list_file_with_non_utf8_names(tmp_path):
    from ssld_zoo.data.images import ImageDataset, scan_unlabeled

    raw = b"caf\xe9.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / os.fsdecode(raw))
    listing = tmp_path / "mined.txt"
    listing.write_bytes(b"# mined\n" + raw + b"\t3\t0.9\n")  # the name's bytes, not UTF-8
    assert scan_unlabeled(listing) == [str(tmp_path / os.fsdecode(raw))]
    image, label, _ = ImageDataset((), [str(listing)])[0]
    assert label == -1 and image[:, 0, 0].tolist() == [1, 2, 3]


def test_mined_list_round_trips_non_utf8_names(tmp_path):
    from ssld_zoo.distill.mining import read_scores, score_line

    name = str(tmp_path / os.fsdecode(b"x\xe9.jpg"))
    scores = tmp_path / "s.tsv"
    with open(scores, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(score_line(name, 4, 0.5))
    assert read_scores(scores) == {name: (4, 0.5)}
