"""int8: PT2E PTQ agrees with fp32 on real photos, its ONNX QDQ file runs in onnxruntime, and
``ssld-zoo quantize`` distils an int8 model from unlabeled images (no labels read).

Accuracy of int8 on a model trained on real photos is ``benchmarks/int8_accuracy.py``'s (too
slow for the tests); here the models have random weights with real-photo BatchNorm
statistics (tests/deploy/photos.py), so only the agreement with fp32 is asserted."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import ssld_zoo
from ssld_zoo.cli.main import main
from ssld_zoo.deploy.quantize import capture, load_int8, quantize_ptq, save_int8
from tests.deploy.photos import photo_batch, photo_statistics_model, relative_diff, top1_agreement

SIZE = 64


@pytest.fixture(scope="module")
def photos(test_data):
    root = test_data / "imagenette"
    return (
        photo_batch(root / "pool", "*.jpg", 64, SIZE),  # unlabeled: calibration
        photo_batch(root / "val", "*/*.JPEG", 50, SIZE, step=40),
    )  # 5 of each class


@pytest.mark.slow  # PT2E capture + calibration + ONNX export: 30-60 s on 2 cores
@torch.no_grad()
def test_ptq_int8_agrees_with_fp32_on_real_photos_and_in_onnxruntime(photos, tmp_path):
    pool, val = photos
    model = photo_statistics_model("resnet18_vd", pool)
    want = model(val)
    int8 = quantize_ptq(copy.deepcopy(model), [pool[:32], pool[32:]])
    got = int8(val)
    # measured 0.92 agreement, 0.33 relative difference (random weights: small logit margins)
    assert top1_agreement(got, want) >= 0.85
    assert 1e-3 < relative_diff(got, want) < 0.5  # quantized, and close
    out = save_int8(int8, tmp_path / "r18.int8.onnx", "onnx", pool[:2])
    import onnx

    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    ort = load_int8(out, "onnx")(val)
    assert top1_agreement(ort, got) >= 0.95 and relative_diff(ort, got) < 0.05
    assert [p.name for p in tmp_path.iterdir()] == ["r18.int8.onnx"]  # no temp file left


@pytest.mark.slow  # QAT capture, 3 steps, conversion, pt2 export: 30-60 s on 2 cores
def test_cli_quantize_distils_from_unlabeled_images(test_data, tmp_path, capsys):
    from safetensors.torch import save_file

    pool = test_data / "imagenette" / "pool"
    data = tmp_path / "unlabeled"
    data.mkdir()
    for p in sorted(pool.glob("*.jpg"))[:12]:
        (data / p.name).write_bytes(p.read_bytes())
    (data / "broken.jpg").write_bytes(b"not a jpeg")  # skipped, named in the log
    torch.manual_seed(0)
    weights = tmp_path / "student.safetensors"
    save_file(
        ssld_zoo.load("pplcnet_x0_25", pretrained=False, num_classes=10).state_dict(), str(weights)
    )
    out = tmp_path / "student.int8.pt2"
    assert (
        main(
            [
                "quantize",
                str(weights),
                "--arch",
                "pplcnet_x0_25",
                "--num-classes",
                "10",
                "--data",
                str(data),
                "--steps",
                "3",
                "--batch-size",
                "4",
                "--check",
                "8",
                "--image-size",
                str(SIZE),
                "--format",
                "pt2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = " ".join(capsys.readouterr().out.split())
    assert "qat: pplcnet_x0_25" in text and "13 unlabeled images" in text
    assert "step 3/3: SSLD loss" in text and "top-1 agreement" in text
    card = json.loads((tmp_path / "student.int8.pt2.json").read_text())
    assert card["precision"] == "int8" and card["method"] == "qat" and card["steps"] == 3
    assert card["input"]["shape"] == ["batch", 3, SIZE, SIZE]
    assert card["check"]["images"] == 8
    run = load_int8(out, "pt2")
    for batch in (1, 3):
        assert run(torch.randn(batch, 3, SIZE, SIZE)).shape == (batch, 10)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{tmp}/missing"], "unlabeled data root"),
        (["--data", "{tmp}/empty"], "holds no images"),
        (["--data", "{tmp}/empty", "--batch-size", "1"], "--batch-size must be at least 2"),
        (["--data", "{tmp}/empty", "--steps", "0"], "--steps must be at least 1"),
        (["--data", "{tmp}/empty", "--format", "tflite"], "invalid choice: 'tflite'"),
    ],
)
def test_bad_quantize_arguments_are_one_line_errors(args, message, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["quantize", "pplcnet_x0_25"] + [a.format(tmp=tmp_path) for a in args]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    assert code in (1, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "".join(message.split()) in "".join(err.split()), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nothing written


def test_capture_needs_a_batch_of_two():
    with pytest.raises(ValueError, match=r"batch of 2 or more, got shape \(1, 3, 8, 8\)"):
        capture(torch.nn.Conv2d(3, 3, 1), torch.randn(1, 3, 8, 8))
