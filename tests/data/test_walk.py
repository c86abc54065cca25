"""Data sources that cannot loop or lie: the folder walker, empty class folders, root roles."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(path)
    return path


def _pool_with_a_loop(root: Path) -> Path:
    """``a.png``, ``sub/b.png``, ``sub/cycle -> ..`` (a loop), ``sub/again.png -> ../a.png``,
    a hidden file and a text file."""
    _png(root / "a.png")
    _png(root / "sub" / "b.png", 1)
    (root / "sub" / "cycle").symlink_to("..")
    (root / "sub" / "again.png").symlink_to("../a.png")
    (root / ".hidden.png").write_bytes(b"x")
    (root / "notes.txt").write_text("not an image")
    return root


def test_a_symlink_loop_is_walked_once_and_each_real_image_listed_once(tmp_path):
    from ssld_zoo.data import FolderWalk

    root = _pool_with_a_loop(tmp_path / "pool")
    walk = FolderWalk()
    paths = walk.images(root)
    assert paths == [str(root / "a.png"), str(root / "sub" / "b.png")]
    assert (walk.hidden, walk.not_images, walk.duplicates, walk.revisits) == (1, 1, 1, 1)
    assert "1 hidden entries" in walk.summary() and "loops" in walk.summary()


def test_unlabeled_roots_and_mining_pools_use_the_walker(tmp_path, caplog):
    from ssld_zoo.data.images import scan_unlabeled

    root = _pool_with_a_loop(tmp_path / "pool")
    with caplog.at_level(logging.WARNING, logger="ssld_zoo.data"):
        paths = scan_unlabeled(root)
    assert sorted(paths) == sorted({str(root / "a.png"), str(root / "sub" / "b.png")})
    assert any("loops" in r.getMessage() and str(root) in r.getMessage() for r in caplog.records)


def test_mining_a_pool_with_a_loop_scores_each_image_once(tmp_path):
    import torch

    from ssld_zoo.distill.mining import mine

    root = _pool_with_a_loop(tmp_path / "pool")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
    model(torch.zeros(1, 3, 8, 8))
    res = mine(
        "mobilenetv3_small_x0_35",
        root,
        5,
        tmp_path / "mined.tsv",
        model=model,
        num_workers=0,
        transform=dict(input_size=8, resize=8),
        device="cpu",
    )
    listed = [
        line.split("\t")[0]
        for line in (tmp_path / "mined.tsv").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert res.scored == 2 and len(listed) == len(set(listed)) == 2


def test_a_class_linked_into_another_is_not_listed_twice(tmp_path):
    from ssld_zoo.data.images import scan_image_folder

    _png(tmp_path / "root" / "cat" / "1.png")
    _png(tmp_path / "root" / "dog" / "2.png")
    (tmp_path / "root" / "dog" / "cats").symlink_to("../cat")
    classes, samples = scan_image_folder(tmp_path / "root")
    assert classes == ["cat", "dog"]
    assert [c for _, c in samples] == ["cat", "dog"]


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    from ssld_zoo.data.images import ImageDataset

    _png(tmp_path / "root" / "cat" / "1.png")
    (tmp_path / "root" / "dog").mkdir()
    (tmp_path / "root" / "dog" / "readme.txt").write_text("no pictures yet")
    with pytest.raises(FileNotFoundError, match=r"class folder .*root/dog holds no images"):
        ImageDataset([str(tmp_path / "root")])


def test_an_empty_class_folder_is_kept_with_a_warning_when_allowed(tmp_path, caplog):
    from ssld_zoo.data.images import ImageDataset

    _png(tmp_path / "root" / "cat" / "1.png")
    (tmp_path / "root" / "dog").mkdir()
    with caplog.at_level(logging.WARNING, logger="ssld_zoo.data"):
        ds = ImageDataset([str(tmp_path / "root")], allow_empty_classes=True)
    assert ds.classes == ["cat", "dog"] and len(ds) == 1
    assert any(str(tmp_path / "root" / "dog") in r.getMessage() for r in caplog.records)


def test_the_recipe_key_allow_empty_classes_is_validated(tmp_path):
    """The dataset's flag is a bool: a recipe saying "yes" is refused by the config check,
    naming the key, before anything is built."""
    from ssld_zoo.distill.recipes import RecipeError
    from tests.distill.conftest import tiny_recipe

    tree = {k: tmp_path / k for k in ("train", "val", "unlabeled")}
    with pytest.raises(RecipeError, match=r"train_dataloader\.dataset\.allow_empty_classes"):
        tiny_recipe(
            tree, folder=tmp_path, **{"train_dataloader.dataset.allow_empty_classes": "yes"}
        )


def test_a_missing_val_root_is_named_as_the_val_root(tmp_path):
    from ssld_zoo.data.images import ImageDataset

    with pytest.raises(FileNotFoundError, match=r"^val root .*nowhere does not exist"):
        ImageDataset([str(tmp_path / "nowhere")], role="val root")


def test_the_runner_names_a_missing_val_root(tmp_path):
    """The recipe's val root, missing, is reported as such (not as a labeled data root), when
    the runner is built (before any model)."""
    from ssld_zoo.distill.runner import build_runner
    from tests.distill.conftest import tiny_recipe

    for c in ("cat", "dog"):
        for i in range(4):
            _png(tmp_path / "train" / c / f"{i}.png", i)
    tree = {k: tmp_path / k for k in ("train", "val", "unlabeled")}
    recipe = tiny_recipe(
        tree,
        folder=tmp_path,
        **{
            "train_dataloader.dataset.unlabeled_roots": [],
            "train_dataloader.batch_size": 2,
            "model.teacher.num_classes": 2,
            "model.student.num_classes": 2,
        },
    )
    with pytest.raises(FileNotFoundError, match=r"^val root .*val does not exist"):
        build_runner(recipe, tmp_path / "work")
