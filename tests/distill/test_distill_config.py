"""Recipes: every recipe loads and builds; bad keys and missing roots give clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssld_zoo.distill.config import (RecipeError, list_recipes, load_recipe, recipe_dirs,
                                     validate_recipe)

REPO = Path(__file__).resolve().parents[2]
PAPER = ["r50d", "r50d_v2", "r34d", "r101d", "mv3_large", "mv3_small", "mv1", "mv2"]


def test_all_paper_recipes_and_their_stage2_are_listed_with_a_description():
    found = {name: desc for name, desc, _ in list_recipes()}
    for name in PAPER:
        assert name in found and found[name], name
        assert f"{name}_stage2" in found and found[f"{name}_stage2"], name


@pytest.mark.parametrize("name", PAPER + [f"{n}_stage2" for n in PAPER])
def test_recipe_loads_and_builds(name):
    from ssld_zoo.distill.distiller import Distiller
    r = load_recipe(name)
    assert r["student"]["name"] and r["teacher"]["name"]
    assert r["loss"]["type"] == "SymmetricKL" and r["hard_label_weight"] == 0.0
    assert r["schedule"]["epochs"] in (30, 60, 360)
    # Build the real models without downloading weights, on the meta device (no memory).
    teacher = dict(r["teacher"], pretrained=False)
    student = dict(r["student"], weights=None, pretrained=False)
    with torch.device("meta"):
        d = Distiller(student=student, teacher=teacher, loss=r["loss"])
    assert d.student.num_classes == d.teacher.num_classes == 1000
    assert not any(p.requires_grad for p in d.teacher.parameters())


def test_paper_hyper_parameters():
    r = load_recipe("r50d")
    assert (r["data"]["batch_size"], r["optimizer"]["lr"], r["optimizer"]["weight_decay"],
            r["schedule"]["epochs"]) == (1024, 0.4, 7e-5, 360)
    assert r["teacher"]["name"] == "resnext101_32x16d_wsl"
    v2 = load_recipe("r50d_v2")
    assert v2["data"]["auto_augment"] == "imagenet" and v2["optimizer"]["weight_decay"] == 2e-5
    mv3 = load_recipe("mv3_large")
    assert (mv3["data"]["batch_size"], mv3["optimizer"]["lr"], mv3["optimizer"]["weight_decay"],
            mv3["teacher"]["name"]) == (5760, 3.65625, 1e-5, "resnet50_vd_ssld")
    s2 = load_recipe("r50d_stage2")
    assert s2["schedule"]["epochs"] == 60 and s2["optimizer"]["lr"] == 0.004
    assert s2["data"]["unlabeled_roots"] == []


def test_cfg_options_override_roots():
    r = load_recipe("r50d", {"data.labeled_roots": ["/x/train"], "schedule.epochs": 10})
    assert r["data"]["labeled_roots"] == ["/x/train"] and r["schedule"]["epochs"] == 10
    assert r["data"]["batch_size"] == 1024  # the rest of the section is kept


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(RecipeError, match=r"unknown key\(s\) epochs; valid top-level keys: .*schedule"):
        load_recipe("r50d", {"epochs": 3})
    with pytest.raises(RecipeError, match=r"data\.batchsize.*valid keys of data: .*batch_size"):
        load_recipe("r50d", {"data.batchsize": 3})


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(FileNotFoundError, match="known recipes: .*r50d"):
        load_recipe("r51d")


def test_missing_data_root_is_named(tmp_path):
    from ssld_zoo.distill.runner import build_runner
    r = validate_recipe(dict(student=dict(name="mobilenetv3_small_x0_35"),
                             teacher=dict(name="mobilenetv3_small_x0_35", pretrained=False),
                             data=dict(labeled_roots=[str(tmp_path / "nope")])))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'}"):
        build_runner(r, tmp_path / "wd")


def test_label_only_training_needs_labels():
    with pytest.raises(RecipeError, match="hard_label_weight must be > 0"):
        validate_recipe(dict(student=dict(name="resnet18_vd"), teacher=None,
                             data=dict(labeled_roots=["/x"])))


def test_recipes_cli_lists_them(capsys):
    from ssld_zoo.cli.main import main
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in PAPER:
        assert name in out
    assert recipe_dirs()[-1] == REPO / "recipes"
