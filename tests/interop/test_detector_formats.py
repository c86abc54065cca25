"""``ssld-zoo to FORMAT`` for the detector layouts: mmdet, hf, rtdetr, dfine.

Each written file is loaded the way its consumer loads it (mmdet's ``init_cfg`` Pretrained,
transformers' ``from_pretrained``) and the consumer's network must compute our per-stage
features in fp32. RT-DETR's and D-FINE's code is not a package: their key names and shapes
are fixtures read from their sources (``fixtures/make_detector_fixtures.py``), and their
conversions are shown to be the checked transformers one under transformers' own renaming.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from ssld_zoo.cli.main import main
from ssld_zoo.interop import convert, get_format, list_formats
from ssld_zoo.interop._core import compare_stages, probe_batch, rename_state, stage_outputs
from ssld_zoo.interop.dfine import DFINE_TO_HF
from ssld_zoo.interop.rtdetr import RTDETR_TO_HF
from ssld_zoo.registry import get_arch, list_architectures
from tests.interop.helpers import randomised

transformers = pytest.importorskip("transformers")  # a test dependency: pyproject [test]

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small forwards: one thread is as fast, and far faster on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def read_fixture(name: str) -> dict[str, tuple[int, ...]]:
    rows = {}
    for line in (FIXTURES / name).read_text().splitlines():
        key, shape = line.split(" ")
        rows[key] = tuple(int(d) for d in re.findall(r"\d+", shape))
    return rows


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def their_stages(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(x)
    return list(out.feature_maps if hasattr(out, "feature_maps") else out)


# --- hf: written, loaded by from_pretrained, run -------------------------------------------
@pytest.mark.parametrize("name", ["resnet18_vd", "resnet50_vd", "pphgnetv2_b0", "pphgnetv2_b4"])
def test_hf_folder_loads_with_from_pretrained_and_computes_our_features(name, tmp_path):
    ours = randomised(name)
    fmt = get_format("hf")
    _, converted = convert("hf", ours)
    out = tmp_path / "backbone"
    fmt.write(converted, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["backbone"]  # no temp folder left
    cls = getattr(transformers, converted.target)
    theirs = cls.from_pretrained(str(out)).eval()
    x = probe_batch()
    diff = compare_stages(stage_outputs(ours, x), their_stages(theirs, x), name, rtol=1e-5)
    assert diff <= 1e-5
    # The comparison is sharp: a stage's BatchNorm statistics swapped and it fails.
    key = next(k for k in converted.state if k.endswith("running_mean") and ".stages.1." in k)
    spoilt = dict(converted.state)
    spoilt[key] = converted.state[key.replace("running_mean", "running_var")]
    spoilt[key.replace("running_mean", "running_var")] = converted.state[key]
    with pytest.raises(ValueError, match="refusing"):
        fmt.check(ours, type(converted)(**{**converted.__dict__, "state": spoilt}))


def test_hf_writes_over_an_old_folder_only_when_complete(tmp_path):
    fmt = get_format("hf")
    ours = randomised("resnet18_vd")
    _, converted = convert("hf", ours)
    out = tmp_path / "backbone"
    out.mkdir()
    (out / "old.txt").write_text("old")
    bad = type(converted)(**{**converted.__dict__, "state": {}})
    with pytest.raises(RuntimeError, match="Missing key"):
        fmt.write(bad, out)  # transformers refuses the empty state: the old folder stays
    assert (out / "old.txt").exists()
    fmt.write(converted, out)
    assert not (out / "old.txt").exists() and (out / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["backbone"]


def test_hgnetv2_zero_padded_stem_pool_is_caught():
    """transformers' and D-FINE's (and timm's) stem pad the 2x2 max-pool with zeros, Paddle
    with -inf: equal while the stem's first layer outputs nothing negative. A learnable affine
    block that makes it negative (B0-B3) shows in the features, and the check refuses."""
    ours = randomised("pphgnetv2_b0", lab_bias=-0.3)
    for fmt in ("hf", "dfine"):
        model, converted = convert(fmt, ours)
        with pytest.raises(ValueError, match="stage 0 differs"):
            get_format(fmt).check(model, converted)


# --- mmdet: init_cfg Pretrained ------------------------------------------------------------
def test_mmdet_resnetv1d_loads_by_init_cfg_and_computes_our_features(
    tmp_path, resource_unavailable
):
    try:
        from mmdet.models.backbones import ResNetV1d
    except ImportError as e:
        resource_unavailable(f"mmdet is not importable ({e}): make setup-downstream")
    ours = randomised("resnet50_vd")
    fmt = get_format("mmdet")
    _, converted = convert("mmdet", ours)
    out = tmp_path / "resnet50_vd.pth"
    fmt.write(converted, out)
    assert set(torch.load(out, weights_only=True)) == {"state_dict", "meta"}
    theirs = ResNetV1d(depth=50, init_cfg=dict(type="Pretrained", checkpoint=str(out)))
    theirs.init_weights()
    theirs.eval()
    x = probe_batch()
    diff = compare_stages(stage_outputs(ours, x), their_stages(theirs, x), "mmdet", rtol=1e-5)
    assert diff <= 1e-5
    assert fmt.check(ours, converted) <= 1e-5
    # The other depths line up key for key and shape for shape (meta device: no compute).
    for depth in (101, 152):
        with torch.device("meta"):
            model = get_arch(f"resnet{depth}_vd").builder()
            ref = ResNetV1d(depth=depth)
        model.arch_name = f"resnet{depth}_vd"
        assert shapes(convert("mmdet", model)[1].state) == shapes(ref.state_dict())


# --- rtdetr / dfine: fixtures + the transformers mapping ---------------------------------
LAYOUTS = [
    ("rtdetr", "resnet18_vd", "rtdetr_presnet18.txt", RTDETR_TO_HF),
    ("rtdetr", "resnet50_vd", "rtdetr_presnet50.txt", RTDETR_TO_HF),
    ("dfine", "pphgnetv2_b0", "dfine_hgnetv2_b0.txt", DFINE_TO_HF),
    ("dfine", "pphgnetv2_b4", "dfine_hgnetv2_b4.txt", DFINE_TO_HF),
]


@pytest.mark.parametrize(
    "fmt,name,fixture,to_hf", LAYOUTS, ids=[f"{f}-{n}" for f, n, *_ in LAYOUTS]
)
def test_layout_is_the_projects_and_the_checked_transformers_mapping(
    fmt, name, fixture, to_hf, tmp_path
):
    ours = randomised(name)
    _, converted = convert(fmt, ours)
    # 1. Exactly the project's key names and shapes.
    assert shapes(converted.state) == read_fixture(fixture)
    # 2. The same tensors as the hf conversion, under transformers' renaming of the project's
    #    keys; and the project's keys renamed so are exactly transformers' model's.
    _, hf = convert("hf", ours)
    renamed = rename_state(converted.state, to_hf, fmt)
    assert renamed.keys() == hf.state.keys()
    assert all(renamed[k] is hf.state[k] or torch.equal(renamed[k], hf.state[k]) for k in renamed)
    config_cls = transformers.RTDetrResNetConfig if fmt == "rtdetr" else transformers.HGNetV2Config
    with torch.device("meta"):
        ref = getattr(transformers, hf.target)(config_cls(**hf.config))
    fixture_in_hf = {
        k: None
        for k in rename_state(
            {k: torch.zeros(s) for k, s in read_fixture(fixture).items()}, to_hf, fixture
        )
    }
    assert fixture_in_hf.keys() == ref.state_dict().keys()
    # 3. The check runs transformers' network on it.
    assert get_format(fmt).check(ours, converted) <= 1e-5
    # 4. The file is a plain state dict torch.load(weights_only=True) reads.
    out = tmp_path / "backbone.pth"
    get_format(fmt).write(converted, out)
    loaded = torch.load(out, weights_only=True)
    assert shapes(loaded) == read_fixture(fixture)


# --- every target, every format ----------------------------------------------------------
def test_every_target_of_every_format_converts():
    """Every architecture each detector format claims converts (meta device: keys and
    shapes only); hf's line up with transformers' model built from the written config."""
    for fmt_name in ("hf", "rtdetr", "dfine", "mmdet"):
        fmt = get_format(fmt_name)
        for arch in fmt.targets():
            with torch.device("meta"):
                model = get_arch(arch).builder()
            model.arch_name = arch
            _, converted = convert(fmt_name, model)
            assert len(converted.state) > 100, (fmt_name, arch)
            if fmt_name == "hf":
                config_cls = (
                    transformers.RTDetrResNetConfig
                    if arch.startswith("resnet")
                    else transformers.HGNetV2Config
                )
                with torch.device("meta"):
                    ref = getattr(transformers, converted.target)(config_cls(**converted.config))
                assert shapes(converted.state) == shapes(ref.state_dict()), arch


def test_formats_and_refusals():
    assert list_formats() == ["dfine", "hf", "mmdet", "rtdetr", "timm"]
    from ssld_zoo.cli.to import FORMATS

    assert sorted(FORMATS) == list_formats()
    archs = set(list_architectures())
    for name in list_formats():
        assert set(get_format(name).targets()) <= archs
    cases = [
        ("mmdet", "resnet18_vd", "identity shortcut"),
        ("mmdet", "resnet200_vd", "200"),
        ("rtdetr", "resnet152_vd", "18, 34, 50 and 101"),
        ("dfine", "pphgnet_tiny", "PP-HGNetV2"),
        ("hf", "mobilenetv3_large_x1_0", "HGNetV2"),
    ]
    for fmt, name, why in cases:
        with pytest.raises(ValueError) as err:
            convert(fmt, name)  # refused before any weights are loaded (none here)
        assert name in str(err.value) and why in str(err.value) and "Supported" in str(err.value)


# --- the command line ----------------------------------------------------------------------
def test_cli_to_rtdetr_writes_checks_and_says_how_to_load(tmp_path, capsys):
    from safetensors.torch import save_file

    ours = randomised("resnet18_vd")
    weights = tmp_path / "mine.safetensors"
    save_file(ours.state_dict(), str(weights))
    out = tmp_path / "presnet18.pth"
    assert main(["to", "rtdetr", "resnet18_vd", str(out), "--weights", str(weights)]) == 0
    printed = capsys.readouterr().out
    assert "checked" in printed and "PResNet(depth=18" in printed
    assert f"pretrained: {str(out)!r}" in printed
    assert shapes(torch.load(out, weights_only=True)) == read_fixture("rtdetr_presnet18.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.safetensors", "presnet18.pth"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["to", "mmdet", "resnet18_vd", str(tmp_path / "x.pth")]) == 1
    err = capsys.readouterr().err
    assert "identity shortcut" in err and "Traceback" not in err
    assert main(["to", "hf", "resnet50_vd", str(tmp_path / "x.pth")]) == 1
    assert "folder" in capsys.readouterr().err
    assert main(["to", "dfine", "pphgnetv2_b0", str(tmp_path / "x.safetensors")]) == 1
    assert ".pth" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["to", "onnx", "resnet50_vd", str(tmp_path / "x.pth")])
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["hf", "rtdetr", "dfine", "mmdet"])
def test_every_target_computes_our_features(fmt, resource_unavailable):
    """By output, every architecture each detector format claims (the fast tier runs one or
    two per format)."""
    if fmt == "mmdet":
        try:
            import mmdet  # noqa: F401
        except ImportError as e:
            resource_unavailable(f"mmdet is not importable ({e}): make setup-downstream")
    f = get_format(fmt)
    for arch in f.targets():
        ours = randomised(arch)
        _, converted = convert(fmt, ours)
        assert f.check(ours, converted) <= 1e-5, arch
