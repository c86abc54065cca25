"""ssld_zoo.deploy.optimize: the compiled fast path equals eager; bf16 agrees on real photos."""

from __future__ import annotations

import copy

import pytest
import torch

import ssld_zoo
from ssld_zoo.deploy import bf16_supported, optimize, to_precision
from ssld_zoo.deploy.export import BF16_RTOL, RTOL
from tests.deploy.photos import photo_batch, photo_statistics_model, relative_diff, top1_agreement
from tests.models.helpers import randomise_bn

SIZE = 64


def _model(name: str = "pplcnet_x0_25") -> torch.nn.Module:
    torch.manual_seed(0)
    return randomise_bn(ssld_zoo.load(name, pretrained=False, num_classes=10)).eval()


@torch.no_grad()
def test_the_fused_channels_last_form_equals_eager():
    model = _model()
    x = torch.randn(3, 3, SIZE, SIZE)
    want = model(x)
    fast = optimize(copy.deepcopy(model), compile=False)
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert float(want.abs().max()) > 1e-2  # randomised BatchNorms: the test can fail
    torch.testing.assert_close(fast(x), want, rtol=0, atol=RTOL * float(want.abs().max()))


@pytest.mark.slow  # one Inductor compilation, 30-100 s on 2 cores
@torch.no_grad()
def test_the_compiled_form_equals_eager():
    model = _model()
    fast = optimize(copy.deepcopy(model))
    x = torch.randn(2, 3, SIZE, SIZE)
    want = model(x)
    torch.testing.assert_close(fast(x), want, rtol=0, atol=RTOL * float(want.abs().max()))


@torch.no_grad()
def test_bf16_agrees_with_fp32_on_real_photos(test_data):
    root = test_data / "imagenette"
    model = photo_statistics_model(
        "mobilenetv3_small_x0_35", photo_batch(root / "pool", "*.jpg", 64, SIZE)
    )
    val = photo_batch(root / "val", "*/*.JPEG", 50, SIZE, step=40)  # 5 of each class
    want = model(val)
    fast16 = optimize(copy.deepcopy(model), precision="bf16", compile=False)
    got = fast16(val)
    assert got.dtype == torch.float32  # bf16 inside, the float32 contract outside
    assert next(fast16.parameters()).dtype == torch.bfloat16
    assert relative_diff(got, want) < BF16_RTOL
    assert top1_agreement(got, want) >= 0.9
    # and it is not float32 in disguise
    assert relative_diff(got, want) > 1e-4


def test_precision_and_support_checks():
    with pytest.raises(ValueError, match="precision 'fp16': expected one of fp32, bf16"):
        to_precision(_model(), "fp16")
    with pytest.raises(ValueError, match="precision 'int4'"):
        optimize(_model(), precision="int4")
    assert isinstance(bf16_supported("cpu"), bool)
    model = _model()
    assert to_precision(model, "fp32") is model
