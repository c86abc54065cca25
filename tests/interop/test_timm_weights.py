"""ssld_zoo.interop.timm_weights and ``ssld-zoo to-timm``: timm's model, given our converted
weights, computes our model's outputs; everything else is refused."""

from __future__ import annotations

import pytest
import timm  # noqa: E402  (a test dependency: pyproject [test])
import torch

import ssld_zoo
from ssld_zoo.cli.main import main
from ssld_zoo.interop import (
    NOT_EQUIVALENT,
    TIMM_EQUIVALENTS,
    check_timm_state_dict,
    timm_equivalent,
    to_timm_state_dict,
)
from ssld_zoo.registry import get_arch, list_architectures
from tests.interop.helpers import randomised


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small forwards: one thread is as fast, and far faster on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def assert_same_outputs(ours: torch.nn.Module, theirs: torch.nn.Module, size: int = 64) -> None:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert a.shape == b.shape
    scale = a.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5 * scale)


def timm_with(name: str, state: dict, num_classes: int) -> torch.nn.Module:
    """timm's model loaded strictly with ``state``. Built on the meta device and given the
    tensors (assign=True): the same strict key and shape check as a normal load, without
    timm's random initialisation (seconds for the big ones on 2 cores)."""
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    model.load_state_dict(state, strict=True, assign=True)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    return model.eval()


# One architecture per family (the smallest), and what each exercises.
FAMILY_CASES = [
    ("resnet50_vd", {}),  # plain rename (ResNet_vd)
    ("pphgnet_tiny", {}),  # PP-HGNet
    ("pphgnet_tiny", {"drop_rate": 0.2}),  # downscale-in-infer dropout folded into the fc
    ("pphgnetv2_b0", {}),  # PP-HGNetV2 (learnable affine blocks)
    ("pplcnet_x0_35", {}),  # zero head-conv bias + dropout fold
    ("pplcnetv2_small", {}),  # unused fused dw_conv dropped + dropout fold
    ("mobilenetv1", {}),
    ("hrnet_w18_c", {}),  # zero biases in timm's classification head
    ("resnext101_32x8d_wsl", {}),
    ("nextvit_small_224", {}),
]


@pytest.mark.parametrize("name,kwargs", FAMILY_CASES, ids=lambda v: str(v) if v else "")
def test_timm_computes_our_outputs(name, kwargs):
    ours = randomised(name, **kwargs)
    timm_name, state = to_timm_state_dict(ours)
    assert timm_name == TIMM_EQUIVALENTS[name]
    theirs = timm_with(timm_name, state, 1000)
    assert_same_outputs(ours, theirs)
    # BatchNorm counters travel too (randomised() set ours to 7).
    counts = {v.item() for k, v in theirs.state_dict().items() if k.endswith("num_batches_tracked")}
    assert counts == {7}


def test_the_comparison_sees_a_misplaced_tensor():
    """The output comparison is sharp: one BatchNorm's statistics swapped, or the head
    dropout's factor left out of the classifier, and the outputs differ."""
    ours = randomised("pplcnet_x0_35")
    timm_name, state = to_timm_state_dict(ours)
    for spoil in ("bn", "dropout"):
        bad = dict(state)
        if spoil == "bn":
            bad["blocks.2.0.bn1.running_mean"], bad["blocks.2.0.bn1.running_var"] = (
                state["blocks.2.0.bn1.running_var"],
                state["blocks.2.0.bn1.running_mean"],
            )
        else:
            bad["classifier.weight"] = ours.state_dict()["fc.weight"]
        with pytest.raises(AssertionError):
            assert_same_outputs(ours, timm_with(timm_name, bad, 1000))
        with pytest.raises(ValueError, match="refusing"):
            check_timm_state_dict(ours, timm_name, bad)
    assert check_timm_state_dict(ours, timm_name, state) < 1e-6


def test_every_equivalent_lines_up_with_timm():
    """Every mapped architecture (not only one per family) converts: the tensor counts, order,
    shapes and names line up with timm's model, which to_timm_state_dict checks (and raises
    on) itself. Built on the meta device: shapes only, fast."""
    for arch in TIMM_EQUIVALENTS:
        with torch.device("meta"):
            model = get_arch(arch).builder()
        model.arch_name = arch
        timm_name, state = to_timm_state_dict(model)
        assert timm_name == TIMM_EQUIVALENTS[arch] and len(state) > 100, arch


def test_every_architecture_has_a_verdict():
    archs = set(list_architectures())
    assert set(TIMM_EQUIVALENTS) <= archs and set(NOT_EQUIVALENT) <= archs
    assert not set(TIMM_EQUIVALENTS) & set(NOT_EQUIVALENT)
    assert archs == set(TIMM_EQUIVALENTS) | set(NOT_EQUIVALENT)
    assert all(timm.is_model(t) for t in TIMM_EQUIVALENTS.values())


def test_other_class_counts():
    ours = randomised("pplcnet_x0_35", num_classes=10)
    timm_name, state = to_timm_state_dict(ours)
    assert state["classifier.weight"].shape == (10, 1280)
    assert_same_outputs(ours, timm_with(timm_name, state, 10))
    # No classifier: the pooled features (MobileNetV1 has no head dropout to fold).
    ours = randomised("mobilenetv1", num_classes=0)
    timm_name, state = to_timm_state_dict(ours)
    assert_same_outputs(ours, timm_with(timm_name, state, 0))


def test_headless_model_with_downscale_dropout_is_refused():
    with pytest.raises(ValueError, match="num_classes=0"):
        to_timm_state_dict(randomised("pplcnet_x0_35", num_classes=0))


def test_architecture_found_without_arch_name():
    model = get_arch("pplcnet_x0_5").builder()  # not through ssld_zoo.load: no arch_name
    assert getattr(model, "arch_name", None) is None
    assert to_timm_state_dict(model)[0] == "lcnet_050"


@pytest.mark.parametrize("name", ["mobilenetv3_large_x1_0", "resnet18_vd", "ghostnet_x1_3_ssld"])
def test_no_exact_equivalent_is_refused(name):
    arch = get_arch(name).name
    with pytest.raises(ValueError) as err:
        to_timm_state_dict(name)  # refused before any weights are loaded (none here)
    msg = str(err.value)
    assert arch in msg and NOT_EQUIVALENT[arch] in msg and "resnet50_vd" in msg
    with pytest.raises(ValueError, match=arch):
        to_timm_state_dict(ssld_zoo.load(arch, pretrained=False))
    with pytest.raises(ValueError, match="Supported: "):
        timm_equivalent(name)


def test_unknown_name_is_a_key_error():
    with pytest.raises(KeyError, match="resnet50_vd"):
        to_timm_state_dict("resnet50_vdd")


def test_tensors_that_do_not_line_up_are_refused():
    model = ssld_zoo.load("resnet50_vd", pretrained=False)
    model.arch_name = "resnet101_vd"  # claims a deeper net: stage 3 runs out early
    with pytest.raises(ValueError) as err:
        to_timm_state_dict(model)
    msg = str(err.value)
    assert "resnet101_vd -> timm resnet101d" in msg and "does not line up" in msg
    assert "timm's layer3.6.conv1.weight (256, 1024, 1, 1)" in msg


def test_weights_with_a_model_is_an_error():
    with pytest.raises(ValueError, match="weights="):
        to_timm_state_dict(ssld_zoo.load("mobilenetv1", pretrained=False), weights="x.pth")


def test_cli_writes_a_file_timm_loads(tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    ours = randomised("pplcnet_x0_35")
    weights = tmp_path / "mine.safetensors"
    save_file(ours.state_dict(), str(weights))
    out = tmp_path / "for_timm.safetensors"
    assert main(["to-timm", "pplcnet_x0_35", str(out), "--weights", str(weights)]) == 0
    printed = capsys.readouterr().out
    assert "lcnet_035" in printed and "checked" in printed
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["timm_model"] == "lcnet_035"
    # The printed hint is the way to load it: run it as written.
    hint = next(line for line in printed.splitlines() if line.startswith("timm.create_model("))
    theirs = eval(hint, {"timm": timm}).eval()
    assert_same_outputs(ours, theirs)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "x.safetensors"
    assert main(["to-timm", "mobilenetv3_small_x1_0", str(out)]) == 1
    err = capsys.readouterr().err
    assert "mobilenetv3_small_x1_0" in err and "Supported" in err and "Traceback" not in err
    assert main(["to-timm", "resnet50_vdd", str(out)]) == 1
    assert "unknown model" in capsys.readouterr().err
    assert main(["to-timm", "resnet50_vd", str(tmp_path / "x.pth")]) == 1
    assert ".safetensors" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
