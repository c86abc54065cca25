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


# --- one place for defaults, a schema, the recipe as an mmengine Config ----------------------

def _minimal(**over) -> dict:
    r = dict(student=dict(name="resnet18_vd"), teacher=dict(name="resnet18_vd"),
             data=dict(labeled_roots=["/x"]))
    r.update(over)
    return r


def test_every_default_has_a_schema_entry_and_no_entry_is_stale():
    from ssld_zoo.distill.config import SCHEMA, recipe_defaults
    defaults = recipe_defaults().to_dict()
    keys = set(defaults) | {f"{k}.{s}" for k, v in defaults.items() if isinstance(v, dict)
                            and SCHEMA[k].text != "a dict with a type" for s in v}
    assert keys == set(SCHEMA)


def test_the_defaults_file_is_the_only_source_of_defaults():
    """A recipe that sets nothing but its names gets exactly recipes/_base_/defaults.py."""
    from ssld_zoo.distill.config import defaults_file, recipe_defaults
    r = validate_recipe(_minimal())
    defaults = recipe_defaults().to_dict()
    assert defaults_file() == REPO / "recipes" / "_base_" / "defaults.py"
    for section in ("optimizer", "schedule", "runtime", "loss", "export"):
        assert r[section].to_dict() == defaults[section], section
    assert {k: v for k, v in r["data"].items() if k != "labeled_roots"} == \
        {k: v for k, v in defaults["data"].items() if k != "labeled_roots"}


@pytest.mark.parametrize("key, value, message", [
    ("data.batch_size", "64", r"data\.batch_size='64': expected an integer >= 1"),
    ("data.batch_size", 0, r"data\.batch_size=0: expected an integer >= 1"),
    ("runtime.amp", "fp8", r"runtime\.amp='fp8': expected one of 'auto', 'bf16', 'fp16', "
                           r"'none'"),
    ("teacher.pretrained", 1, r"teacher\.pretrained=1: expected True or False"),
    ("data.scale", (0.1,), r"data\.scale=\(0\.1,\): expected 2 numbers"),
    ("data.val_root", 3, r"data\.val_root=3: expected a path or None"),
    ("runtime.ema", 0.1, r"runtime\.ema=0\.1: expected a dict or None"),
    ("schedule.warmup_start_factor", 2, r"expected a number in \(0, 1\]"),
    ("optimizer.lr", "0.1", r"optimizer\.lr='0\.1': expected a number"),
    ("data.eval_transform", {"crop": 3}, r"data\.eval_transform: unknown key\(s\) crop; "
                                         r"valid: input_size, resize"),
])
def test_a_bad_value_names_its_key_and_the_type_expected(key, value, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("cifar10/ssld", {key: value})


def test_sections_merge_and_delete_replaces_the_way_mmengine_bases_do():
    merged = validate_recipe(_minimal(optimizer=dict(lr=0.5)))
    assert merged["optimizer"].to_dict() == dict(type="SGD", lr=0.5, momentum=0.9,
                                                 weight_decay=1e-4, nesterov=False)
    with pytest.raises(RecipeError, match=r"optimizer\.momentum.*AdamW.*_delete_=True"):
        validate_recipe(_minimal(optimizer=dict(type="AdamW", lr=1e-3)))
    adamw = validate_recipe(_minimal(optimizer=dict(type="AdamW", lr=1e-3, _delete_=True)))
    assert adamw["optimizer"].to_dict() == dict(type="AdamW", lr=1e-3)
    # a dict may replace a None default (mmengine's own merge refuses that)
    ema = validate_recipe(_minimal(runtime=dict(ema=dict(momentum=1e-3))))
    assert ema["runtime"]["ema"] == dict(momentum=1e-3)


def test_cli_cfg_options_take_mmengine_syntax(capsys):
    from ssld_zoo.cli.main import main
    assert main(["recipes", "cifar10/ssld", "--cfg-options", "schedule.epochs=3",
                 "data.scale=(0.3,1.0)", "data.labeled_roots=[/a,/b]"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "epochs=3" in out and "scale=( 0.3, 1.0, )" in out
    assert "labeled_roots=[ '/a', '/b', ]" in out


def test_data_roots_in_a_recipe_are_relative_to_it_and_command_line_ones_to_the_cwd(
        tmp_path, monkeypatch):
    (tmp_path / "recipes" / "_base_").mkdir(parents=True)
    (tmp_path / "recipes" / "_base_" / "data.py").write_text(
        "data = dict(labeled_roots=['imgs/train'], val_root='imgs/val')\n")
    (tmp_path / "recipes" / "mine.py").write_text(
        "_base_ = ['./_base_/data.py']\nstudent = dict(name='resnet18_vd')\n"
        "teacher = dict(name='resnet18_vd')\ndata = dict(unlabeled_roots='more')\n")
    monkeypatch.chdir(tmp_path)
    r = load_recipe(tmp_path / "recipes" / "mine.py")
    here = tmp_path / "recipes"
    assert r["data"]["labeled_roots"] == [str(here / "imgs" / "train")]
    assert r["data"]["val_root"] == str(here / "imgs" / "val")
    assert r["data"]["unlabeled_roots"] == [str(here / "more")]
    r = load_recipe(tmp_path / "recipes" / "mine.py", {"data.val_root": "given/val"})
    assert r["data"]["val_root"] == "given/val"
    # the shipped CIFAR-10 recipes find ../shared/data from their own folder, wherever we are
    assert Path(load_recipe("cifar10/ssld")["data"]["labeled_roots"][0]) == \
        (REPO.parent / "shared" / "data" / "cifar10" / "train")


def test_the_runner_records_the_recipe_config_itself(tiny_tree, tmp_path):
    from mmengine.config import Config
    from ssld_zoo.distill.runner import build_runner
    from tests.distill.conftest import tiny_recipe
    recipe = tiny_recipe(tiny_tree)
    assert isinstance(recipe, Config) and recipe.filename == "tiny.py"
    runner, _ = build_runner(recipe, tmp_path / "wd", log_level="ERROR")
    recorded = runner.cfg.to_dict()
    assert {k: v for k, v in recorded.items() if k != "compile"} == recipe.to_dict()
