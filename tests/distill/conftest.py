"""Fixtures of the distillation tests: a tiny tree of real CIFAR-10 images and tiny recipes.

The images are symlinks into ``$SSLD_ZOO_TEST_DATA/cifar10`` (never copies in the repo);
absent data skips the tests, or fails them under CI (see tests/conftest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_ARCH = "mobilenetv3_small_x0_35"  # the smallest fast zoo model at 32 px


@pytest.fixture(scope="session")
def cifar10(test_data: Path) -> Path:
    root = test_data / "cifar10"
    if not (root / "train").is_dir():
        from tests.conftest import unavailable

        unavailable(f"{root}/train not found: set SSLD_ZOO_TEST_DATA")
    return root


@pytest.fixture(scope="session")
def tiny_tree(cifar10: Path, tmp_path_factory) -> dict[str, Path]:
    """``train/<class>/`` 3 images per class, ``unlabeled/`` 10 images + 1 unreadable file,
    ``val/<class>/`` 1 image per class."""
    root = tmp_path_factory.mktemp("tiny_cifar")
    for split, src, n in (("train", "train", 3), ("val", "val", 1)):
        for cls in sorted(os.listdir(cifar10 / src)):
            (root / split / cls).mkdir(parents=True)
            for f in sorted(os.listdir(cifar10 / src / cls))[:n]:
                (root / split / cls / f).symlink_to(cifar10 / src / cls / f)
    (root / "unlabeled").mkdir()
    for f in sorted(os.listdir(cifar10 / "unlabeled"))[:10]:
        (root / "unlabeled" / f).symlink_to(cifar10 / "unlabeled" / f)
    (root / "unlabeled" / "zz_broken.jpg").write_bytes(b"not a jpeg")
    return {k: root / k for k in ("train", "val", "unlabeled")}


TINY_RECIPE = """\
_base_ = ["{base}/models/distiller.py", "{base}/default_runtime.py"]
description = "tiny test run"
model = dict(teacher=dict(type="ZooModel", name="{arch}", pretrained=False, num_classes=10),
             student=dict(type="ZooModel", name="{arch}", num_classes=10))
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, drop_last=True,
    sampler=dict(type="EpochIndexSampler", shuffle=True), collate_fn=dict(type="collate_images"),
    dataset=dict(type="ImageDataset", labeled_roots=["{train}"], unlabeled_roots=["{unlabeled}"],
                 seed=0, transform=dict(type="TrainViewTransform", input_size=32)))
val_dataloader = dict(
    batch_size=8, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
    collate_fn=dict(type="collate_images"),
    dataset=dict(type="ImageDataset", labeled_roots=["{val}"], role="val root",
                 transform=dict(type="ResizeCenterCrop", input_size=32, resize=32)))
val_evaluator = dict(type="TopKAccuracy")
val_cfg = dict()
optim_wrapper = dict(type="auto_amp_optim_wrapper",
                     optimizer=dict(type="SGD", lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=0,
                        convert_to_iter_based=True)]
train_cfg = dict(type="SkipEmptyBatchTrainLoop", max_epochs=2, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""

NO_VAL = {
    "val_dataloader": None,
    "val_cfg": None,
    "val_evaluator": None,
    "default_hooks.checkpoint.save_best": None,
}


def tiny_recipe(tree: dict[str, Path], no_val: bool = False, folder: Path | None = None, **options):
    """A checked recipe (an mmengine Config read from a file): tiny student and teacher
    (random init), 32 px, 2 epochs, batch 8. ``options``: dotted keys, as ``--cfg-options``
    (``tiny_recipe(tree, **{"train_cfg.max_epochs": 1})``); ``no_val``: no validation."""
    import tempfile

    from ssld_zoo.distill.recipes import load_recipe
    from ssld_zoo.shipped import recipes_dir

    folder = Path(folder or tempfile.mkdtemp(prefix="tiny_recipe_"))
    path = folder / "tiny.py"
    path.write_text(
        TINY_RECIPE.format(
            base=recipes_dir() / "_base_", arch=TINY_ARCH, **{k: str(v) for k, v in tree.items()}
        )
    )
    return load_recipe(path, {**(NO_VAL if no_val else {}), **options})


def write_recipe(path: Path, recipe) -> Path:
    """Write a recipe (an mmengine Config) as the Python config file users write."""
    recipe.dump(str(path))
    return path


def read_state(path: Path) -> dict:
    """The tensors of a safetensors file."""
    from safetensors.torch import load_file

    return load_file(str(path))
