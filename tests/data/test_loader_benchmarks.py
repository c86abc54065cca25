"""The loader benchmark's and the GPU proof's functions on a few real photos (CPU, no timing
asserted): benchmarks/loader_speed.py and benchmarks/gpu_proof.py --device cpu --smoke."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _benchmark(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    if name not in sys.modules:
        sys.path.insert(0, str(REPO / "benchmarks"))
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_every_cpu_decoder_gives_the_recipes_views_of_real_photos(test_data):
    L = _benchmark("loader_speed")
    paths = L.photo_paths(2)
    assert len(paths) == 2 and all(p.suffix == ".jpg" for p in paths)
    views = L.views()
    assert set(views) == {"train", "eval"}
    for name, decode in L.decoders().items():
        for view, transform in views.items():
            cpu, wall = L.decode_augment_rate(decode, transform, paths)
            assert cpu > 0 and wall > 0, (name, view)
    # torchvision's decode is the reader ImageDataset uses: same crop from the same seed
    # as Pillow's decode (same pixels in, the resize differs by rounding only)
    from ssld_zoo.data.images import sample_seed, seeded

    train = views["train"]
    with seeded(sample_seed(0, 0, 0)):
        a = train(L.decode_pil(paths[0]))
    with seeded(sample_seed(0, 0, 0)):
        b = train(L.decode_torchvision(paths[0]))
    assert a.shape == b.shape == (3, 224, 224)
    assert (a.int() - b.int()).abs().float().mean() < 2


def test_loader_part_runs_the_real_dataset_with_both_readers(test_data):
    L = _benchmark("loader_speed")
    paths = L.photo_paths(4)
    for kw in ({"workers": 0}, {"workers": 0, "pil": True}, {"workers": 1, "persistent": True}):
        cpu, wall = L.loader_rate(paths, epochs=1, batch=2, **kw)
        assert cpu > 0 and wall > 0, kw
    from ssld_zoo.data import images

    assert images.read_pixels is not images.read_image  # the PIL reader was put back


def test_measure_and_tables_on_two_photos(test_data, capsys, tmp_path):
    L = _benchmark("loader_speed")
    out = tmp_path / "loader.json"
    assert (
        L.main(["--images", "2", "--rounds", "1", "--loader-epochs", "0", "--json", str(out)]) == 0
    )
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["errors"] == {}
    assert {"PIL", "torchvision decode_jpeg (read_pixels)"} <= set(result["decode"])
    assert all(len(r) == 1 for by_view in result["decode"].values() for r in by_view.values())
    assert "train vs PIL" in capsys.readouterr().out


def test_gpu_proof_records_each_part_and_its_failure(test_data, tmp_path, monkeypatch):
    """The cheap parts end to end on the CPU; a part that raises is recorded with its error
    and the next one still runs; the JSON and the table are written."""
    P = _benchmark("gpu_proof")

    def broken(args, tmp):
        raise RuntimeError("no such kernel")

    monkeypatch.setitem(P.PARTS, "distill_speed", broken)
    rc = P.main(
        ["--out", str(tmp_path), "--device", "cpu", "--smoke"]
        + ["--parts", "decode,distill_speed,inference"]
    )
    assert rc == 1  # a part failed
    result = json.loads((tmp_path / "gpu_proof.json").read_text())
    assert list(result["parts"]) == ["decode", "distill_speed", "inference"]
    assert result["parts"]["distill_speed"]["error"] == "RuntimeError: no such kernel"
    assert "error" not in result["parts"]["inference"]
    rows = result["parts"]["inference"]["rows"]["pplcnet_x0_25 batch 2"]
    assert set(rows) == {"fp32 eager", "bf16 eager"} and rows["fp32 eager"]["images_per_s"] > 0
    table = (tmp_path / "gpu_proof.md").read_text()
    assert "| distill_speed | failed | RuntimeError: no such kernel |" in table
    assert "| inference | pplcnet_x0_25 batch 2, fp32 eager, images/s |" in table
    assert not list(tmp_path.glob("*.tmp"))


def test_gpu_proof_keeps_what_a_part_measured_before_it_ran_out_of_time(tmp_path, monkeypatch):
    P = _benchmark("gpu_proof")

    def half_done(args, tmp):
        P.PARTIAL["rows"] = {
            "resnet50_vd batch 1": {"fp32 eager": {"ms": 2.0, "images_per_s": 500.0}}
        }
        raise P.PartTimeout("stopped after 150 s (its share of the time budget)")

    monkeypatch.setitem(P.PARTS, "inference", half_done)
    assert P.main(["--out", str(tmp_path), "--device", "cpu", "--parts", "inference"]) == 1
    r = json.loads((tmp_path / "gpu_proof.json").read_text())["parts"]["inference"]
    assert r["error"].startswith("PartTimeout: stopped after 150 s")
    assert r["rows"]["resnet50_vd batch 1"]["fp32 eager"]["images_per_s"] == 500.0
    table = (tmp_path / "gpu_proof.md").read_text()
    assert "| inference | resnet50_vd batch 1, fp32 eager, images/s | 500 |" in table
    assert "| inference | failed | PartTimeout: stopped after 150 s" in table


def test_gpu_proof_stops_a_part_at_its_time_and_skips_when_the_budget_is_spent(tmp_path):
    P = _benchmark("gpu_proof")
    with pytest.raises(P.PartTimeout):
        with P.time_limit(1):
            while True:
                pass
    rc = P.main(["--out", str(tmp_path), "--device", "cpu", "--smoke", "--budget", "0"])
    result = json.loads((tmp_path / "gpu_proof.json").read_text())
    assert rc == 1 and set(result["parts"]) == set(P.PARTS)
    assert all(r["error"] == "skipped: the time budget is spent" for r in result["parts"].values())
    with pytest.raises(SystemExit):
        P.main(["--out", str(tmp_path), "--parts", "decode,warp"])


def test_gpu_proof_imagenette_recipe_uses_the_engines_bf16_channels_last_compile(
    test_data, tmp_path
):
    """The GPU run's recipe, composed and checked as ``ssld-zoo distill`` would (not run)."""
    import argparse

    P = _benchmark("gpu_proof")
    args = argparse.Namespace(smoke=False, device="cuda", workers=14)
    r = P.imagenette_recipe(args, tmp_path, compile_=True)
    assert r.compile is True and r.model.teacher.compile is True
    assert r.model.teacher.precision == "bf16" and r.model.teacher.fold_bn is True
    assert r.model.data_preprocessor.channels_last is True
    assert r.optim_wrapper.type == "auto_amp_optim_wrapper" and r.optim_wrapper.amp == "bf16"
    assert r.model.teacher.name == "resnext101_32x16d_wsl" and r.model.student.name == "resnet50_vd"
    ds = r.train_dataloader.dataset
    assert ds.transform.input_size == 128 and ds.unlabeled_roots[0].endswith("imagenette/pool")
    assert r.train_dataloader.num_workers == 14 and r.train_dataloader.pin_memory is True


@pytest.mark.slow  # about a minute on 2 cores: every part, two real training runs
def test_gpu_proof_smoke_runs_every_part_on_the_cpu(test_data, tmp_path):
    P = _benchmark("gpu_proof")
    assert P.main(["--out", str(tmp_path), "--device", "cpu", "--smoke"]) == 0
    result = json.loads((tmp_path / "gpu_proof.json").read_text())
    assert list(result["parts"]) == list(P.PARTS)
    speed = result["parts"]["distill_speed"]["views_per_s"]
    assert len(speed) == 4 and all(v > 0 for v in speed.values())  # (a) (b) (c) (d)
    run = result["parts"]["distill_imagenette"]
    assert run["steps"] == 3 and run["losses_finite"] and run["compile"] is False
    assert torch.isfinite(torch.tensor(run["views_per_s"]))
