"""The Imagenette reproduction: its recipes differ only where the arms mean to, and the driver
(benchmarks/reproduce_imagenette.py) trains the teacher, builds the cache, mines the pool, runs
the arms, resumes and reports the targets, on a tiny tree of real Imagenette photos."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ssld_zoo.distill.recipes import list_recipes, load_recipe

REPO = Path(__file__).resolve().parents[2]


def _driver():
    """benchmarks/reproduce_imagenette.py as a module (benchmarks/ is not a package)."""
    name = "reproduce_imagenette"
    if name not in sys.modules:
        path = REPO / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="module")
def tiny_imagenette(test_data: Path, tmp_path_factory) -> Path:
    """``train/<wnid>/`` 3 photos a class, ``val/<wnid>/`` 1, ``pool/`` 8 Imagenette + 4
    Imagewoof photos with their ``pool_sources.tsv``: symlinks into the shared data."""
    src = test_data / "imagenette"
    if not (src / "pool_sources.tsv").is_file():
        from tests.conftest import unavailable

        unavailable(f"{src}/pool_sources.tsv not found: set SSLD_ZOO_TEST_DATA")
    root = tmp_path_factory.mktemp("tiny_imagenette")
    for split, n in (("train", 3), ("val", 1)):
        for cls in sorted(p.name for p in (src / split).iterdir()):
            (root / split / cls).mkdir(parents=True)
            for f in sorted((src / split / cls).iterdir())[:n]:
                (root / split / cls / f.name).symlink_to(f)
    rows = [ln.split("\t") for ln in (src / "pool_sources.tsv").read_text().splitlines()[1:]]
    keep = [r for r in rows if r[1] == "imagenette"][:8] + [
        r for r in rows if r[1] != "imagenette"
    ][:4]
    (root / "pool").mkdir()
    for name, _ in keep:
        (root / "pool" / name).symlink_to(src / "pool" / name)
    (root / "pool_sources.tsv").write_text(
        "file\tsource\n" + "".join(f"{n}\t{s}\n" for n, s in keep)
    )
    return root


def test_recipes_are_the_drivers_arms_and_differ_only_where_meant():
    drv = _driver()
    files = {f.stem for f in (REPO / "recipes" / "imagenette").glob("*.py")}
    assert files == {a.recipe.split("/")[1] for a in drv.ARMS}
    listed = {name for name, desc, _ in list_recipes() if desc}
    assert {f"imagenette/{s}" for s in files} <= listed
    r = {a.key: load_recipe(a.recipe) for a in drv.ARMS}
    a, b, cached, teacher = r["a"], r["b"], r["b_cached"], r["teacher"]
    # the pipeline: RandomResizedCrop 112-128 + flip; eval resize 144, centre crop 128
    view = a["train_dataloader"]["dataset"]["transform"]
    assert 112 <= view["input_size"] <= 128 and view["hflip"] == 0.5
    ev = a["val_dataloader"]["dataset"]["transform"]
    assert (ev["resize"], ev["input_size"]) == (144, 128)
    assert a["model"]["student"] == b["model"]["student"] == cached["model"]["student"]
    assert b["train_dataloader"]["dataset"] == a["train_dataloader"]["dataset"]
    assert cached["train_dataloader"]["dataset"]["images"] == b["train_dataloader"]["dataset"]
    assert a["train_cfg"] == b["train_cfg"] == cached["train_cfg"]
    assert a["model"]["hard_label_weight"] == 1.0
    assert b["model"]["hard_label_weight"] == cached["model"]["hard_label_weight"] == 0.0
    assert b["model"]["teacher"]["name"] == teacher["model"]["student"]["name"] == drv.TEACHER_ARCH
    assert teacher["export"]["name"] + ".safetensors" == drv.TEACHER_EXPORT


# One epoch of batches of 8 at 64 px, validated at its end; the cache holds that one view.
FAST = [
    "train_cfg.max_epochs=1",
    "train_cfg.val_interval=1",
    "param_scheduler.0.end=0.5",
    "param_scheduler.1.begin=0.5",
    "train_dataloader.batch_size=8",
]


@pytest.mark.slow
def test_driver_runs_every_arm_mines_and_resumes(tiny_imagenette: Path, tmp_path: Path, capsys):
    drv = _driver()
    work = tmp_path / "work"
    argv = ["--data", str(tiny_imagenette), "--work-dir", str(work), "--per-class", "1"]
    argv += ["--views", "1", "--cfg-options", *FAST]
    assert drv.main(argv) == 0
    out = capsys.readouterr().out
    res = json.loads((work / "results.json").read_text())
    rows = {r["key"]: r for r in res["rows"]}
    assert list(rows) == [a.key for a in drv.ARMS]
    assert rows["a"]["labels_used"] == 30 and rows["b"]["labels_used"] == 0
    assert rows["b"]["images"] == rows["b_cached"]["images"] == 30
    assert rows["c"]["images"] == 42  # train + the whole pool
    mined = drv.read_list(work / "mined.tsv")
    assert 1 <= len(mined) <= 10  # top-1 per predicted class
    assert rows["m"]["images"] == rows["r"]["images"] == 30 + len(mined)
    assert len(drv.read_list(work / "random.tsv")) == len(mined)
    assert res["purity"]["pool"] == {"images": 12, "in_distribution": pytest.approx(800 / 12)}
    assert res["purity"]["mined"]["images"] == len(mined)
    names = [t[0] for t in res["targets"]]
    assert "(b) from the cache - (b) online" in names and "mined set in-distribution (%)" in names
    assert "| (m) SSLD + the mined pool | pplcnet_x0_5 |" in out
    assert all(r["cpu_minutes"] > 0 for r in rows.values())
    assert (work / "reproduction_imagenette.png").stat().st_size > 10_000

    # A second call reads every export back: nothing is trained, labelled or mined again.
    assert drv.main(argv) == 0
    assert "This call: 0 step(s)" in capsys.readouterr().out
    # A new mined list makes (m) stale, and only (m).
    run = drv.Run(tiny_imagenette, work, FAST)
    arms = {a.key: a for a in drv.ARMS}
    assert [k for k, a in arms.items() if run.stale(a)] == []
    mined_file = work / "mined.tsv"
    card = drv.card_of(work, arms["m"]).stat().st_mtime
    import os

    os.utime(mined_file, (card + 60, card + 60))
    assert [k for k, a in arms.items() if run.stale(a)] == ["m"]


def test_driver_refuses_a_data_folder_without_a_pool(tmp_path: Path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
    with pytest.raises(SystemExit, match="pool"):
        _driver().main(["--data", str(tmp_path), "--work-dir", str(tmp_path / "w")])
