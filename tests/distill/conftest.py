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


def tiny_recipe(tree: dict[str, Path], **over) -> dict:
    """A validated recipe: tiny student and teacher (random init), 32 px, 2 epochs, batch 8."""
    from ssld_zoo.distill.config import validate_recipe
    recipe = dict(
        description="tiny test run",
        teacher=dict(name=TINY_ARCH, pretrained=False, num_classes=10),
        student=dict(name=TINY_ARCH, num_classes=10),
        data=dict(labeled_roots=[str(tree["train"])], unlabeled_roots=[str(tree["unlabeled"])],
                  val_root=str(tree["val"]), batch_size=8, num_workers=0, input_size=32,
                  eval_transform=dict(input_size=32, resize=32)),
        optimizer=dict(type="SGD", lr=0.05, momentum=0.9, weight_decay=1e-4),
        schedule=dict(epochs=2, warmup_epochs=0),
        runtime=dict(log_interval=1, tensorboard=False, checkpoint_interval=1),
    )
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return validate_recipe(recipe, "tiny.py")


def write_recipe(path: Path, recipe: dict) -> Path:
    """Write a recipe dict as an mmengine Python config (what users write)."""
    body = "".join(f"{k} = {v!r}\n" for k, v in recipe.items() if not k.startswith("_"))
    path.write_text(body)
    return path


def read_state(path: Path) -> dict:
    """The tensors of a safetensors file (an exported student)."""
    from safetensors.torch import load_file
    return load_file(str(path))
