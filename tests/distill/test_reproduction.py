"""The CIFAR-10 reproduction: its recipes differ only where the arms mean to, and the driver
(benchmarks/reproduce_cifar10.py) runs them end to end, resumes and reports the targets."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ssld_zoo.distill.config import list_recipes, load_recipe, recipe_name, resolve_recipe

REPO = Path(__file__).resolve().parents[2]


def _driver():
    """benchmarks/reproduce_cifar10.py as a module (benchmarks/ is not a package)."""
    name = "reproduce_cifar10"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, REPO / "benchmarks" / "reproduce_cifar10.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_every_cifar10_recipe_is_an_arm_of_the_driver_and_listed():
    files = {f.stem for f in (REPO / "recipes" / "cifar10").glob("*.py")}
    arms = {a.recipe.split("/")[1] for a in _driver().ARMS}
    assert files == arms
    listed = {name for name, desc, _ in list_recipes() if desc}
    assert {f"cifar10/{s}" for s in files} <= listed


def test_nested_recipe_names_resolve_and_name_the_default_work_dir():
    path = resolve_recipe("cifar10/ssld")
    assert path == REPO / "recipes" / "cifar10" / "ssld.py"
    assert resolve_recipe("cifar10/ssld.py") == path
    assert recipe_name(path) == "cifar10/ssld"
    assert recipe_name(REPO / "recipes" / "r50d.py") == "r50d"
    with pytest.raises(FileNotFoundError, match="cifar10/ssld_unlabeled"):
        resolve_recipe("cifar10/nope")


def test_arms_differ_only_in_teacher_loss_and_data():
    r = {a.key: load_recipe(a.recipe) for a in _driver().ARMS}
    students = {k: v for k, v in r.items() if k != "teacher"}
    for key, rec in students.items():
        # Same student, schedule, optimiser, augmentation, evaluation and seed in every arm,
        # but for (b'), which is (b) with (c)'s number of steps.
        for section in ("student", "schedule", "optimizer", "runtime"):
            if (key, section) != ("b_steps", "schedule"):
                assert rec[section] == r["a"][section], (key, section)
        same = {k: v for k, v in rec["data"].items() if k != "unlabeled_roots"}
        assert same == {k: v for k, v in r["a"]["data"].items() if k != "unlabeled_roots"}, key
    assert r["a"]["teacher"] is None and r["a"]["hard_label_weight"] == 1.0
    for key in ("b", "b_steps", "c", "kl", "soft_ce", "hard"):
        # No human label in any distillation arm; all learn from the same teacher export.
        assert r[key]["hard_label_weight"] == 0.0, key
        assert r[key]["teacher"] == r["b"]["teacher"], key
        assert r[key]["teacher"]["weights"].endswith("teacher/cifar10_teacher.safetensors")
    assert r["b"]["data"]["unlabeled_roots"] == r["b_steps"]["data"]["unlabeled_roots"] == []
    # (b') takes as many optimiser steps on 10k images as (c) on 15k.
    per_epoch = {k: (10_000 if k == "b_steps" else 15_000) // r[k]["data"]["batch_size"]
                 for k in ("b_steps", "c")}
    assert per_epoch["b_steps"] * r["b_steps"]["schedule"]["epochs"] == \
        per_epoch["c"] * r["c"]["schedule"]["epochs"]
    assert {k: v for k, v in r["b_steps"]["schedule"].items() if k != "epochs"} == \
        {k: v for k, v in r["b"]["schedule"].items() if k != "epochs"}
    for key in ("c", "kl", "soft_ce", "hard"):
        assert r[key]["data"]["unlabeled_roots"] == ["../shared/data/cifar10/unlabeled"], key
    assert [r[k]["loss"]["type"] for k in ("c", "kl", "soft_ce", "hard")] == \
        ["SymmetricKL", "KL", "SoftTargetCE", "PseudoLabelCE"]
    assert r["teacher"]["student"]["name"] == r["b"]["teacher"]["name"]
    assert r["teacher"]["export"]["name"] + ".safetensors" == _driver().TEACHER_EXPORT


def test_driver_runs_the_arms_and_resumes(tiny_tree, tmp_path: Path, capsys):
    drv = _driver()
    data = tiny_tree["train"].parent  # train 3 per class, val 1, unlabeled 10 + 1 broken
    work = tmp_path / "work"
    opts = ["schedule.epochs=1", "schedule.warmup_epochs=0", "data.batch_size=8",
            "runtime.val_interval=1"]
    # Asking for (c) alone trains the teacher it needs first.
    assert drv.main(["--data", str(data), "--work-dir", str(work), "--arms", "a,c",
                     "--jobs", "2", "--cfg-options", *opts]) == 0
    out = capsys.readouterr().out
    res = json.loads((work / "results.json").read_text())
    assert [r["key"] for r in res["rows"]] == ["a", "c"]
    a, c = res["rows"]
    assert (a["images"], a["labels_used"]) == (30, 30)
    assert (c["images"], c["labels_used"]) == (41, 0)     # train + unlabeled, no label read
    assert c["teacher_top1"] is not None and 0 <= c["top1"] <= 100
    assert (work / "teacher" / drv.TEACHER_EXPORT).is_file()
    assert (work / "reproduction_cifar10.png").stat().st_size > 10_000
    assert "| (c) SSLD + unlabeled | mobilenetv1_x0_5 |" in out
    assert "3 arm(s) trained" in out
    # Second call: everything is exported already, nothing is trained again.
    assert drv.main(["--data", str(data), "--work-dir", str(work), "--arms", "a,c"]) == 0
    assert "0 arm(s) trained" in capsys.readouterr().out
    assert json.loads((work / "results.json").read_text())["rows"] == res["rows"]


def test_driver_rejects_bad_arms_and_data(tiny_tree, tmp_path: Path):
    drv = _driver()
    data = tiny_tree["train"].parent
    with pytest.raises(SystemExit, match="unknown arm.*zz.*valid: teacher, a, b"):
        drv.main(["--data", str(data), "--arms", "a,zz"])
    with pytest.raises(SystemExit, match=f"{tmp_path / 'nowhere' / 'train'} is not a folder"):
        drv.main(["--data", str(tmp_path / "nowhere")])
