"""The CIFAR-10 reproduction: its recipes differ only where the arms mean to, and the driver
(benchmarks/reproduce_cifar10.py) runs them end to end, resumes and reports the targets."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from ssld_zoo.distill.recipes import list_recipes, load_recipe, recipe_name, resolve_recipe

# Slow tier: minutes, not seconds; `make test-fast` leaves these out.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _driver():
    """benchmarks/reproduce_cifar10.py as a module (benchmarks/ is not a package)."""
    name = "reproduce_cifar10"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, REPO / "benchmarks" / "reproduce_cifar10.py"
        )
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
    from tests.distill.recipe_fields import as_before  # the sections, by meaning

    r = {a.key: as_before(load_recipe(a.recipe)) for a in _driver().ARMS}
    students = {k: v for k, v in r.items() if k != "teacher"}
    images = {
        k: 10_000 + (5_000 if v["data"]["unlabeled_roots"] else 0) for k, v in students.items()
    }
    for key, rec in students.items():
        # Same student, optimiser, schedule shape, augmentation, evaluation and seed everywhere.
        for section in ("student", "optimizer", "runtime"):
            assert rec[section] == r["a"][section], (key, section)
        assert {k: v for k, v in rec["schedule"].items() if k != "epochs"} == {
            k: v for k, v in r["a"]["schedule"].items() if k != "epochs"
        }, key
        same = {k: v for k, v in rec["data"].items() if k != "unlabeled_roots"}
        assert same == {k: v for k, v in r["a"]["data"].items() if k != "unlabeled_roots"}, key
        # ... and as many optimiser steps (full batches: the loader drops the last one), so
        # the arms with the unlabeled images train on more images, not for longer; but for (c+),
        # which keeps (b)'s epochs (the paper's comparison) and so takes 1.5x the steps.
        steps = images[key] // rec["data"]["batch_size"] * rec["schedule"]["epochs"]
        assert steps == (117 * 30 if key == "c_epochs" else 78 * 30), key
    assert r["c_epochs"]["schedule"]["epochs"] == r["b"]["schedule"]["epochs"]
    assert {
        k: v
        for k, v in r["c_epochs"].items()
        if k not in ("schedule", "export", "description", "_path")
    } == {
        k: v for k, v in r["c"].items() if k not in ("schedule", "export", "description", "_path")
    }
    assert r["a"]["teacher"] is None and r["a"]["hard_label_weight"] == 1.0
    for key in ("b", "c", "c_epochs", "kl", "soft_ce", "hard"):
        # No human label in any distillation arm; all learn from the same teacher export.
        assert r[key]["hard_label_weight"] == 0.0, key
        assert r[key]["teacher"] == r["b"]["teacher"], key
        assert r[key]["teacher"]["weights"].endswith("teacher/cifar10_teacher.safetensors")
    assert r["a"]["data"]["unlabeled_roots"] == r["b"]["data"]["unlabeled_roots"] == []
    for key in ("c", "c_epochs", "kl", "soft_ce", "hard"):
        # relative to the recipe's folder: ../shared beside the checkout, from any directory
        assert [os.path.normpath(REPO / p) for p in r[key]["data"]["unlabeled_roots"]] == [
            str(REPO.parent / "shared" / "data" / "cifar10" / "unlabeled")
        ], key
    assert [r[k]["loss"]["type"] for k in ("c", "kl", "soft_ce", "hard")] == [
        "SymmetricKL",
        "KL",
        "SoftTargetCE",
        "PseudoLabelCE",
    ]
    assert r["teacher"]["student"]["name"] == r["b"]["teacher"]["name"]
    assert r["teacher"]["export"]["name"] + ".safetensors" == _driver().TEACHER_EXPORT


# One epoch of batches of 8, its first half warming up, validated at its end.
FAST = [
    "train_cfg.max_epochs=1",
    "param_scheduler.0.end=0.5",
    "param_scheduler.1.begin=0.5",
    "train_dataloader.batch_size=8",
    "train_cfg.val_interval=1",
]


def test_driver_runs_the_arms_and_resumes(tiny_tree, tmp_path: Path, capsys):
    drv = _driver()
    data = tiny_tree["train"].parent  # train 3 per class, val 1, unlabeled 10 + 1 broken
    work = tmp_path / "work"
    opts = FAST
    # Asking for (c) alone trains the teacher it needs first.
    assert (
        drv.main(
            [
                "--data",
                str(data),
                "--work-dir",
                str(work),
                "--arms",
                "a,c",
                "--jobs",
                "2",
                "--cfg-options",
                *opts,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    res = json.loads((work / "results.json").read_text())
    assert [r["key"] for r in res["rows"]] == ["a", "c"]
    a, c = res["rows"]
    assert (a["images"], a["labels_used"]) == (30, 30)
    assert (c["images"], c["labels_used"]) == (41, 0)  # train + unlabeled, no label read
    assert (a["steps"], c["steps"]) == (30 // 8, 41 // 8)  # 1 epoch of full batches of 8
    assert c["teacher_top1"] is not None and 0 <= c["top1"] <= 100
    assert (work / "teacher" / drv.TEACHER_EXPORT).is_file()
    assert (work / "reproduction_cifar10.png").stat().st_size > 10_000
    assert "| (c) SSLD + unlabeled, (b)'s steps | mobilenetv1_x0_5 |" in out
    assert "3 arm(s) trained" in out
    # Second call: everything is exported already, nothing is trained again.
    assert (
        drv.main(
            ["--data", str(data), "--work-dir", str(work), "--arms", "a,c", "--cfg-options", *opts]
        )
        == 0
    )
    assert "0 arm(s) trained" in capsys.readouterr().out
    assert json.loads((work / "results.json").read_text())["rows"] == res["rows"]

    # An export made by another config is stale: the card records the recipe, so a changed
    # option re-runs the arms it reaches (here the teacher too, and (c) after it) ...
    arms = {a.key: a for a in drv.ARMS}
    teacher, a_arm, c_arm = arms["teacher"], arms["a"], arms["c"]
    assert drv.plan([a_arm, c_arm], teacher, data, work, opts, force=False) == []
    assert drv.stale_sections(a_arm, data, work, opts + ["optim_wrapper.optimizer.lr=0.05"]) == [
        "optim_wrapper"
    ]
    hflip = "train_dataloader.dataset.transform.hflip=0.0"
    assert drv.stale_sections(c_arm, data, work, opts + [hflip]) == ["data"]
    assert drv.plan([a_arm, c_arm], teacher, data, work, opts + [hflip], force=False) == [
        teacher,
        a_arm,
        c_arm,
    ]
    # ... and so does a teacher newer than the students that learnt from it.
    t_file = work / "teacher" / drv.TEACHER_EXPORT
    # (newer than (c)'s card, which a loaded machine may write minutes after the teacher)
    newer = drv.card_of(work, c_arm).stat().st_mtime + 60
    os.utime(t_file, (t_file.stat().st_atime, newer))
    assert drv.plan([a_arm, c_arm], teacher, data, work, opts, force=False) == [c_arm]
    # Old runs without a card are re-run, not read.
    (drv.card_of(work, a_arm)).unlink()
    assert drv.stale_sections(a_arm, data, work, opts) == ["export"]


def test_driver_builds_the_cache_once_for_the_cached_arms(tiny_tree, tmp_path: Path, capsys):
    drv = _driver()
    data = tiny_tree["train"].parent
    work = tmp_path / "work"
    opts = FAST
    assert (
        drv.main(
            [
                "--data",
                str(data),
                "--work-dir",
                str(work),
                "--arms",
                "b,cached_1,cached_4",
                "--cfg-options",
                *opts,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    m = json.loads((work / "teacher_cache" / "manifest.json").read_text())
    assert m["complete"] and m["spec"]["views"] == drv.CACHE_VIEWS
    assert m["spec"]["num_images"] == 30  # (b)'s images: train only
    cards = {
        k: json.loads(drv.card_of(work, a).read_text())["training"]
        for k, a in {a.key: a for a in drv.ARMS}.items()
        if k in ("cached_1", "cached_4")
    }
    assert cards["cached_1"]["data"]["views"] == 1
    assert cards["cached_4"]["data"]["views"] == 4
    assert "| (b) SSLD from the cache, N=4 | 4 |" in out
    assert "(b) from the cache, N=1 - (b) online" in out
    assert (work / "reproduction_cifar10_fast.png").stat().st_size > 10_000
    assert drv.cache_minutes(work) > 0


def test_seeds_change_initialisation_order_and_augmentation_not_the_teacher(tmp_path: Path):
    """``--seeds``: a student arm of seed S sets ``randomness.seed`` (initialisation, batch
    order) and its images' ``seed`` (augmentation; the cache is per seed), the teacher none."""
    drv = _driver()
    arms = {a.key: a for a in drv.ARMS}
    work, data = tmp_path / "w", tmp_path / "d"
    b = drv.arm_options(arms["b"], data, work, [], seed=3)
    assert "randomness.seed=3" in b and "train_dataloader.dataset.seed=3" in b
    top5 = drv.arm_options(arms["cached_32_top5"], data, work, ["x=1"], seed=3)
    assert "train_dataloader.dataset.images.seed=3" in top5 and top5[-1] == "x=1"
    assert f"model.teacher_cache={work / 'seed3' / 'teacher_cache_top5'}" in top5
    assert f"model.teacher.weights={work / 'teacher' / drv.TEACHER_EXPORT}" in top5
    assert not any("seed=" in o for o in drv.arm_options(arms["teacher"], data, work, [], seed=3))
    assert drv.arm_options(arms["b"], data, work, []) == [
        o for o in b if "seed=" not in o
    ]  # without --seeds: as before
    cmd = drv.arm_command(arms["b"], data, work, [], seed=3)
    assert cmd[cmd.index("--work-dir") + 1] == str(work / "seed3" / "b")
    # the seed table: mean, std, range, each seed, and the mean against online (b)
    row = lambda key, top1: dict(key=key, label=key, top1=top1)  # noqa: E731
    table = drv.seed_markdown(
        {0: [row("b", 60.0), row("cached_32", 59.0)], 1: [row("b", 62.0), row("cached_32", 60.0)]}
    )
    assert "| b | 2 | 61.00 | 1.41 | 60.00 - 62.00 | 60.00 | 62.00 |  |" in table
    assert "| cached_32 | 2 | 59.50 | 0.71 | 59.00 - 60.00 | 59.00 | 60.00 | -1.50 |" in table


def test_driver_runs_seeds_with_a_cache_per_seed(tiny_tree, tmp_path: Path, capsys):
    drv = _driver()
    data = tiny_tree["train"].parent
    work = tmp_path / "work"
    argv = ["--data", str(data), "--work-dir", str(work), "--arms", "b,cached_32_top5"]
    assert drv.main([*argv, "--seeds", "0,1", "--cfg-options", *FAST]) == 0
    out = capsys.readouterr().out
    for seed in (0, 1):
        m = json.loads((work / f"seed{seed}" / "teacher_cache_top5" / "manifest.json").read_text())
        assert (m["spec"]["topk"], m["spec"]["seed"]) == (5, seed)
        card = json.loads(drv.card_of(work / f"seed{seed}", drv.ARMS[2]).read_text())
        assert card["training"]["seed"] == seed
    assert list(work.glob("*/cifar10_teacher.safetensors")) == [
        work / "teacher" / drv.TEACHER_EXPORT
    ]
    assert "| (b) SSLD from a top-5 cache, N=32 | 2 |" in out
    res = json.loads((work / "results.json").read_text())
    assert sorted(res["by_seed"]) == ["0", "1"]
    # run again: every seed's arms are current, nothing is trained
    assert drv.main([*argv, "--seeds", "0,1", "--cfg-options", *FAST]) == 0
    assert "0 arm(s) trained" in capsys.readouterr().out


def test_driver_rejects_bad_arms_and_data(tiny_tree, tmp_path: Path):
    drv = _driver()
    data = tiny_tree["train"].parent
    with pytest.raises(SystemExit, match="unknown arm.*zz.*valid: teacher, a, b"):
        drv.main(["--data", str(data), "--arms", "a,zz"])
    with pytest.raises(SystemExit, match=f"{tmp_path / 'nowhere' / 'train'} is not a folder"):
        drv.main(["--data", str(tmp_path / "nowhere")])


def _teacher_fit():
    name = "teacher_fit"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "teacher_fit.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


def test_teacher_fit_statistics_by_hand():
    import math

    import torch

    class Fixed(torch.nn.Module):  # the same logits for every image
        def forward(self, x):
            return torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(len(x), 3)

    batch = {
        "inputs": torch.zeros(4, 3, 2, 2, dtype=torch.uint8),
        "labels": torch.tensor([0, 0, 1, -1]),
    }  # the unlabeled one is left out of top-1
    s = _teacher_fit().crop_stats(Fixed(), batch, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    assert s["top1"] == pytest.approx(200 / 3)
    assert s["confidence"] == pytest.approx(0.7)
    assert s["entropy"] == pytest.approx(-sum(p * math.log(p) for p in (0.7, 0.2, 0.1)))


def test_teacher_fit_runs_on_real_crops(tiny_tree, tmp_path: Path, capsys):
    import ssld_zoo
    from ssld_zoo.registry import EvalTransform, WeightCard
    from ssld_zoo.weights.export import export_with_card

    weights = export_with_card(
        ssld_zoo.load("mobilenetv1_x0_25", pretrained=False, num_classes=10).state_dict(),
        tmp_path / "teacher.safetensors",
        WeightCard(
            name="t",
            arch="mobilenetv1_x0_25",
            urls=("teacher.safetensors",),
            top1=None,
            top1_source="",
            num_classes=10,
            transform=EvalTransform(32, 32),
        ),
    )
    assert (
        _teacher_fit().main(
            [
                str(weights),
                "--arch",
                "mobilenetv1_x0_25",
                "--data",
                str(tiny_tree["train"].parent),
                "--images",
                "8",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for split in ("train", "unlabeled", "val"):
        assert f"│ {split} " in out
    with pytest.raises(SystemExit, match="nope.safetensors: no such weights file"):
        _teacher_fit().main(
            [str(tmp_path / "nope.safetensors"), "--data", str(tiny_tree["train"].parent)]
        )
