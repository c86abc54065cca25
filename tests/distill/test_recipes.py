"""Recipes are mmengine Runner configs: every recipe loads and builds, Runner.from_cfg trains one
as it stands, bad keys and values are one line naming the key and what the class expects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssld_zoo.distill.recipes import RecipeError, list_recipes, load_recipe, recipe_dirs

REPO = Path(__file__).resolve().parents[2]
PAPER = ["r50d", "r50d_v2", "r34d", "r101d", "mv3_large", "mv3_small", "mv1", "mv2"]


def test_all_paper_recipes_and_their_stage2_are_listed_with_a_description():
    found = {name: desc for name, desc, _ in list_recipes()}
    for name in PAPER:
        assert name in found and found[name], name
        assert f"{name}_stage2" in found and found[f"{name}_stage2"], name


@pytest.mark.parametrize("name", PAPER + [f"{n}_stage2" for n in PAPER])
def test_recipe_loads_and_builds(name):
    from mmengine.registry import MODELS

    r = load_recipe(name)
    m = r.model
    assert m.type == "Distiller" and m.student.name and m.teacher.name
    assert m.loss.type == "SymmetricKL" and m.hard_label_weight == 0.0
    assert r.train_cfg.max_epochs in (30, 60, 360)
    # Build the real models without downloading weights, on the meta device (no memory).
    cfg = m.to_dict()
    cfg["teacher"] = dict(cfg["teacher"], pretrained=False)
    cfg["student"] = dict(cfg["student"], weights=None, pretrained=False)
    with torch.device("meta"):
        d = MODELS.build(cfg)
    assert d.num_classes == d.teacher.num_classes == 1000
    assert not any(p.requires_grad for p in d.teacher.parameters())


def test_paper_hyper_parameters():
    r = load_recipe("r50d")
    opt = r.optim_wrapper.optimizer
    assert (r.train_dataloader.batch_size, opt.lr, opt.weight_decay, r.train_cfg.max_epochs) == (
        1024,
        0.4,
        7e-5,
        360,
    )
    assert r.model.teacher.name == "resnext101_32x16d_wsl"
    assert [s["type"] for s in r.param_scheduler] == ["LinearLR", "CosineAnnealingLR"]
    v2 = load_recipe("r50d_v2")
    assert v2.train_dataloader.dataset.transform.auto_augment == "imagenet"
    assert v2.optim_wrapper.optimizer.weight_decay == 2e-5
    s2 = load_recipe("r50d_stage2")
    assert s2.train_cfg.max_epochs == 60 and s2.optim_wrapper.optimizer.lr == 0.004
    assert s2.train_dataloader.dataset.unlabeled_roots == []


def test_cfg_options_override_roots():
    r = load_recipe(
        "r50d", {"train_dataloader.dataset.labeled_roots": ["/x/train"], "train_cfg.max_epochs": 10}
    )
    assert r.train_dataloader.dataset.labeled_roots == ["/x/train"]
    assert r.train_cfg.max_epochs == 10
    assert r.train_dataloader.batch_size == 1024  # the rest of the section is kept


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(FileNotFoundError, match="known recipes: .*r50d"):
        load_recipe("r51d")


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "train_dataloader.batch_size",
            "64",
            r"train_dataloader\.batch_size='64': expected an integer >= 1",
        ),
        ("train_dataloader.batch_size", 0, r"train_dataloader\.batch_size=0: expected an integer"),
        ("model.teacher.pretrained", 1, r"model\.teacher\.pretrained=1: expected True or False"),
        (
            "train_dataloader.dataset.transform.scale",
            (0.1,),
            r"train_dataloader\.dataset\.transform\.scale=\(0\.1,\): expected 2 numbers",
        ),
        (
            "optim_wrapper.optimizer.lr",
            "0.1",
            r"optim_wrapper\.optimizer\.lr='0\.1': expected a "
            r"number",
        ),
        ("model.loss.temp", 2, r"unknown key\(s\) model\.loss\.temp for SymmetricKL; valid: eps"),
        (
            "train_dataloader.dataset.transform.crop",
            3,
            r"unknown key\(s\) train_dataloader\.dataset\.transform\.crop for TrainViewTransform; "
            r"valid: input_size, scale",
        ),
        (
            "model.student.type",
            "Resnet",
            r"model\.student\.type='Resnet' is not a registered model "
            r"name; expected one of: .*ZooModel",
        ),
        (
            "default_hooks.checkpoint.interval",
            "x",
            r"default_hooks\.checkpoint\.interval='x': expected an integer",
        ),
        (
            "train_cfg.max_epoch",
            3,
            r"unknown key\(s\) train_cfg\.max_epoch for "
            r"SkipEmptyBatchTrainLoop; valid: max_epochs",
        ),
    ],
)
def test_a_bad_value_names_its_key_and_the_type_expected(key, value, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("cifar10/ssld", {key: value})


def test_a_replaced_optimizer_needs_delete_the_way_mmengine_bases_do():
    with pytest.raises(
        RecipeError,
        match=r"optim_wrapper\.optimizer\.momentum.*AdamW.*"
        r"_delete_=True",
    ):
        load_recipe("cifar10/ssld", {"optim_wrapper.optimizer": dict(type="AdamW", lr=1e-3)})
    adamw = load_recipe(
        "cifar10/ssld", {"optim_wrapper.optimizer": dict(type="AdamW", lr=1e-3, _delete_=True)}
    )
    assert adamw.optim_wrapper.optimizer.to_dict() == dict(type="AdamW", lr=1e-3)


def test_recipes_cli_lists_them(capsys):
    from ssld_zoo.cli.main import main

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in PAPER:
        assert name in out
    assert recipe_dirs()[-1] == REPO / "recipes"


def test_cli_cfg_options_take_mmengine_syntax(capsys):
    from ssld_zoo.cli.main import main

    assert (
        main(
            [
                "recipes",
                "cifar10/ssld",
                "--cfg-options",
                "train_cfg.max_epochs=3",
                "train_dataloader.dataset.transform.scale=(0.3,1.0)",
                "train_dataloader.dataset.labeled_roots=[/a,/b]",
            ]
        )
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "max_epochs=3" in out and "scale=( 0.3, 1.0, )" in out
    assert "labeled_roots=[ '/a', '/b', ]" in out


def test_data_roots_in_a_recipe_are_relative_to_it_and_command_line_ones_to_the_cwd(
    tmp_path, monkeypatch
):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mine.py").write_text(
        f"_base_ = [{str(REPO / 'recipes' / 'cifar10' / 'ssld.py')!r}]\n"
        "train_dataloader = dict(dataset=dict(labeled_roots=['imgs/train'],\n"
        "                                     unlabeled_roots=['more']))\n"
        "val_dataloader = dict(dataset=dict(labeled_roots=['imgs/val']))\n"
    )
    monkeypatch.chdir(tmp_path)
    r = load_recipe(tmp_path / "recipes" / "mine.py")
    here = tmp_path / "recipes"
    assert r.train_dataloader.dataset.labeled_roots == [str(here / "imgs" / "train")]
    assert r.train_dataloader.dataset.unlabeled_roots == [str(here / "more")]
    assert r.val_dataloader.dataset.labeled_roots == [str(here / "imgs" / "val")]
    r = load_recipe(
        tmp_path / "recipes" / "mine.py", {"val_dataloader.dataset.labeled_roots": ["given/val"]}
    )
    assert r.val_dataloader.dataset.labeled_roots == ["given/val"]
    # the shipped CIFAR-10 recipes find ../shared/data from their own folder, wherever we are
    root = Path(load_recipe("cifar10/ssld").train_dataloader.dataset.labeled_roots[0])
    assert root.resolve() == (REPO.parent / "shared" / "data" / "cifar10" / "train").resolve()


def test_missing_data_root_is_named(tiny_tree, tmp_path):
    from ssld_zoo.distill.runner import build_runner
    from tests.distill.conftest import tiny_recipe

    r = tiny_recipe(
        tiny_tree, **{"train_dataloader.dataset.labeled_roots": [str(tmp_path / "nope")]}
    )
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'}"):
        build_runner(r, tmp_path / "wd")


def test_runner_from_cfg_trains_a_recipe_as_it_stands(tiny_tree, tmp_path):
    """mmengine's own entry point, no ssld-zoo front: Config.fromfile -> Runner.from_cfg."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from tests.distill.conftest import tiny_recipe

    path = tmp_path / "plain.py"
    tiny_recipe(tiny_tree, **{"train_cfg.max_epochs": 1}).dump(str(path))
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(tmp_path / "wd")  # as mmengine's tools/train.py sets it
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val()
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 100
    assert (tmp_path / "wd" / "epoch_1.pth").is_file()


def test_every_registered_class_greps_to_its_name():
    """A type string in a recipe is the name of the class (or builder) it builds."""
    from mmengine import registry as R

    import ssld_zoo.adapters.transfer  # noqa: F401
    import ssld_zoo.distill  # noqa: F401

    for reg in (
        R.MODELS,
        R.HOOKS,
        R.DATASETS,
        R.TRANSFORMS,
        R.DATA_SAMPLERS,
        R.FUNCTIONS,
        R.METRICS,
        R.LOOPS,
        R.RUNNERS,
        R.OPTIM_WRAPPERS,
        R.OPTIM_WRAPPER_CONSTRUCTORS,
    ):
        for name, obj in reg.module_dict.items():
            if obj.__module__.startswith("ssld_zoo"):
                assert obj.__name__ == name, (reg.name, name, obj)
