"""``ssld-zoo export`` and ssld_zoo.deploy.export: files, cards, the check, the errors.

No weights can be downloaded here: a weights file is made from a random-init model, its
BatchNorm statistics randomised so that the outputs are far from zero (a fresh model's are
nearly zero, which any export would match)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ssld_zoo
from ssld_zoo.cli.main import main
from ssld_zoo.deploy import export as export_mod
from ssld_zoo.deploy.export import (
    BF16_RTOL,
    FORMATS,
    RTOL,
    SUFFIXES,
    load_exported,
    synthetic_image,
)
from ssld_zoo.weights.fileops import sha256_of
from tests.models.helpers import randomise_bn

ARCH = "pplcnet_x0_25"  # the smallest zoo model: an export costs the exporter's time only
# AOTInductor compiles for a minute on 2 cores: its one test is test_export_an_aoti_package
QUICK_FORMATS = [f for f in FORMATS if f != "aoti"]
SIZE = 224  # the default transform's crop: what the card must say


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = randomise_bn(ssld_zoo.load(ARCH, pretrained=False))
    path = tmp_path_factory.mktemp("weights") / "lcnet_test.safetensors"
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """An image file of another size and aspect than the crop (resize + crop do work)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "pattern.png"
    # mirrored: not the image the check uses by default
    synthetic_image(400, 300).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    return path


def _assert_runs_like_eager(path: Path, fmt: str, eager: torch.nn.Module, batch: int) -> None:
    x = torch.randn(batch, 3, SIZE, SIZE)
    with torch.no_grad():
        want = eager(x)
    want = want if isinstance(want, list) else [want]
    got = load_exported(path, fmt)(x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        scale = float(w.abs().max())
        assert scale > 1e-2
        torch.testing.assert_close(g, w, rtol=0, atol=RTOL * scale)


@pytest.mark.parametrize("fmt", QUICK_FORMATS)
def test_export_a_weights_file_as_a_fused_dynamic_batch_classifier(
    fmt, weights, photo, tmp_path, capsys
):
    out = tmp_path / "sub" / f"lcnet{SUFFIXES[fmt]}"
    assert (
        main(
            [
                "export",
                str(weights),
                "--arch",
                ARCH,
                "--format",
                fmt,
                "--out",
                str(out),
                "--dynamic-batch",
                "--fuse",
                "--image",
                str(photo),
            ]
        )
        == 0
    )
    text = " ".join(capsys.readouterr().out.split())
    assert f"max |{fmt} - eager| =" in text and "top-1 agrees" in text and ": OK" in text
    assert f"check on {photo}, batch 1 and 3" in text

    card = json.loads((tmp_path / "sub" / f"{out.name}.json").read_text())
    assert card["format"] == fmt and card["file"] == out.name
    assert card["arch"] == ARCH and card["name"] == ARCH
    assert card["input"] == {
        "name": "input",
        "shape": ["batch", 3, SIZE, SIZE],
        "dtype": "float32",
        "layout": "NCHW",
    }
    assert card["outputs"] == [{"name": "logits", "shape": ["batch", 1000]}]
    assert card["dynamic_batch"] is True and card["fused"] is True
    assert card["preprocess"] == {
        "input_size": 224,
        "resize": 256,
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert card["num_classes"] == 1000 and card["class_names"] == ssld_zoo.class_names()
    assert card["features"] is False and card["out_indices"] is None
    assert card["source"] == {
        "weights": weights.name,
        "file": str(weights.resolve()),
        "url": None,
        "sha256": sha256_of(weights),
    }
    assert card["versions"] == {"ssld_zoo": ssld_zoo.__version__, "torch": torch.__version__}
    assert (card["opset"] >= 18) if fmt == "onnx" else card["opset"] is None
    check = card["check"]
    assert check["passed"] is True and check["top1_agrees"] is True
    assert check["batch_sizes"] == [1, 3] and check["image"] == str(photo)
    assert 0 <= check["max_abs_diff"] <= check["tolerance"]
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]

    eager = ssld_zoo.load(ARCH, weights=weights)  # not fused: the file must equal the original
    for batch in (1, 3):
        _assert_runs_like_eager(out, fmt, eager, batch)


@pytest.mark.parametrize("fmt", QUICK_FORMATS)
def test_export_feature_maps_of_a_name_with_other_weights(
    fmt, weights, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the default output file lands here
    opset = ["--opset", "18"] if fmt == "onnx" else []
    assert (
        main(
            [
                "export",
                ARCH,
                "--weights",
                str(weights),
                "--format",
                fmt,
                "--out-indices",
                "1",
                "3",
                *opset,
            ]
        )
        == 0
    )
    out = tmp_path / f"{ARCH}_features{SUFFIXES[fmt]}"
    text = " ".join(capsys.readouterr().out.split())
    assert "synthetic test pattern" in text and "top-1" not in text and ": OK" in text

    card = json.loads(out.with_name(out.name + ".json").read_text())
    eager = ssld_zoo.load(ARCH, weights=weights, features_only=True, out_indices=(1, 3))
    info = [{"channels": f.channels, "reduction": f.reduction} for f in eager.feature_info]
    batch = "batch" if fmt == "torchscript" else 1  # TorchScript takes any batch
    assert card["features"] is True and card["out_indices"] == [1, 3]
    assert card["feature_info"] == info
    assert card["outputs"] == [
        {
            "name": f"features.{i}",
            "shape": [batch, f["channels"], SIZE // f["reduction"], SIZE // f["reduction"]],
        }
        for i, f in enumerate(info)
    ]
    assert card["num_classes"] is None and card["class_names"] is None
    assert card["dynamic_batch"] is (fmt == "torchscript") and card["fused"] is False
    assert card["opset"] == (18 if fmt == "onnx" else None)
    assert card["check"]["top1_agrees"] is None and card["check"]["batch_sizes"] == (
        [1, 3] if fmt == "torchscript" else [1]
    )
    _assert_runs_like_eager(out, fmt, eager, 1)


@pytest.mark.slow  # one AOTInductor compilation: about a minute on 2 cores
def test_export_an_aoti_package(weights, photo, tmp_path, capsys):
    out = tmp_path / f"lcnet{SUFFIXES['aoti']}"
    assert (
        main(
            [
                "export",
                str(weights),
                "--arch",
                ARCH,
                "--format",
                "aoti",
                "--out",
                str(out),
                "--dynamic-batch",
                "--fuse",
                "--image",
                str(photo),
            ]
        )
        == 0
    )
    text = " ".join(capsys.readouterr().out.split())
    assert "max |aoti - eager| =" in text and "top-1 agrees" in text and ": OK" in text
    card = json.loads(out.with_name(out.name + ".json").read_text())
    assert card["format"] == "aoti" and card["precision"] == "fp32" and card["fused"] is True
    assert card["dynamic_batch"] is True and card["check"]["batch_sizes"] == [1, 3]
    assert card["check"]["passed"] is True
    eager = ssld_zoo.load(ARCH, weights=weights)  # not fused: the file must equal the original
    for batch in (1, 3):
        _assert_runs_like_eager(out, "aoti", eager, batch)


def test_export_in_bf16(weights, photo, tmp_path, capsys):
    out = tmp_path / "lcnet_bf16.pt2"
    assert (
        main(
            [
                "export",
                str(weights),
                "--arch",
                ARCH,
                "--format",
                "pt2",
                "--out",
                str(out),
                "--precision",
                "bf16",
                "--image",
                str(photo),
            ]
        )
        == 0
    )
    text = " ".join(capsys.readouterr().out.split())
    assert "bf16" in text and "top-1 agrees" in text and ": OK" in text
    card = json.loads(out.with_name(out.name + ".json").read_text())
    assert card["precision"] == "bf16" and card["input"]["dtype"] == "float32"
    check = card["check"]
    # bfloat16 inside: within its tolerance of eager float32, but beyond float32's
    assert check["passed"] is True
    assert RTOL / BF16_RTOL * check["tolerance"] < check["max_abs_diff"] <= check["tolerance"]
    eager = ssld_zoo.load(ARCH, weights=weights)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        want = eager(x)
    got = load_exported(out, "pt2")(x)[0]
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert float((got - want).abs().max()) <= BF16_RTOL * float(want.abs().max())


def test_an_export_that_differs_from_eager_fails_the_check(weights, tmp_path, capsys, monkeypatch):
    real = export_mod.load_exported

    def off_by_one(path, fmt):
        run = real(path, fmt)
        return lambda x: [o + 1.0 for o in run(x)]

    monkeypatch.setattr(export_mod, "load_exported", off_by_one)
    out = tmp_path / "bad.pt2"
    assert main(["export", str(weights), "--arch", ARCH, "--format", "pt2", "--out", str(out)]) == 1
    assert "FAILED" in capsys.readouterr().out
    check = json.loads(out.with_name("bad.pt2.json").read_text())["check"]
    assert check["passed"] is False and check["max_abs_diff"] > check["tolerance"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["pplcnet_x0_255"], "unknown model 'pplcnet_x0_255'"),
        (
            ["{w}", "--arch", ARCH, "--format", "tflite"],
            "unknown export format 'tflite': expected one of onnx, aoti, pt2, torchscript",
        ),
        (["{w}"], "is a weights file: name its architecture with --arch"),
        (["{tmp}/missing.safetensors", "--arch", ARCH], "missing.safetensors does not exist"),
        ([ARCH, "--weights", "{tmp}/missing.pth"], "missing.pth does not exist"),
        ([ARCH, "--arch", ARCH], "--arch is for a weights FILE"),
        (["{w}", "--arch", ARCH, "--image", "{tmp}/missing.jpg"], "missing.jpg does not exist"),
        (["{w}", "--arch", ARCH, "--out", "{tmp}/a_file/m.onnx"], "cannot write"),
        (["{w}", "--arch", ARCH, "--out", "{tmp}"], "is a directory"),
        (
            ["{w}", "--arch", ARCH, "--format", "pt2", "--opset", "18"],
            "--opset applies to --format onnx only",
        ),
    ],
)
def test_bad_names_formats_and_paths_are_one_line_errors(
    args, message, weights, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    argv = [a.format(w=weights, tmp=tmp_path) for a in args]
    assert main(["export", *argv]) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error:") and "Traceback" not in err
    # rich wraps long lines, even inside a path: compare without whitespace
    assert "".join(message.split()) in "".join(err.split()), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written
