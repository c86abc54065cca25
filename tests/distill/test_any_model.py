"""Teachers and students from anywhere (issue 21): a timm student from a zoo teacher, a zoo
student from a timm teacher with a class map (trained from a teacher cache), a torchvision
student; each trains a few steps on real CIFAR-10 images, is exported, and its export loads back
(through ssld_zoo.load, and for timm through timm's own pretrained_cfg_overlay)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.distill.conftest import TINY_ARCH, tiny_recipe

pytest.importorskip("timm")  # a test dependency (pyproject [test])

ONE_EPOCH = {"train_cfg.max_epochs": 1}


def _train_and_load_back(recipe, work):
    """Train, export, and load the export back with ssld_zoo.load(card arch, weights=...);
    returns (trained student, loaded model, card, export path)."""
    import ssld_zoo
    from ssld_zoo.distill.runner import DistillResult, build_runner, export_from_runner

    runner = build_runner(recipe, work, log_level="WARNING")
    runner.train()
    path = export_from_runner(runner, recipe, DistillResult(work, None))
    card = json.loads(path.with_suffix(".safetensors.json").read_text())
    loaded = ssld_zoo.load(card["arch"], weights=str(path))
    student = runner.model.student.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), student(x))
    assert loaded.weight_card.name == card["name"]
    return student, loaded, card, path


@pytest.mark.slow  # ~20 s each; the builder test below is the quick check
def test_timm_student_from_a_zoo_teacher(tiny_tree, tmp_path):
    import timm

    recipe = tiny_recipe(
        tiny_tree,
        no_val=True,
        **ONE_EPOCH,
        **{"model.student": dict(_delete_=True, type="TimmModel", name="timm/test_resnet")},
    )
    student, _, card, path = _train_and_load_back(recipe, tmp_path / "wd")
    assert card["arch"] == "timm/test_resnet" and card["num_classes"] == 10  # the teacher's
    assert card["teacher"] == TINY_ARCH
    # timm itself loads the export as a local pretrained file (num_classes in the overlay:
    # timm drops a classifier whose size differs from its pretrained_cfg)
    again = timm.create_model(
        "test_resnet",
        pretrained=True,
        num_classes=10,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=10),
    ).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), student(x))


@pytest.mark.slow  # ~20 s each; the builder test below is the quick check
def test_zoo_student_from_a_timm_teacher_with_a_class_map_through_a_cache(tiny_tree, tmp_path):
    """A 20-class timm teacher, its even classes mapped onto the student's 10; the cache holds
    the mapped outputs, and training from it builds no teacher."""
    from ssld_zoo.distill.cache import TeacherCache, build_teacher_cache

    teacher = dict(
        _delete_=True,
        type="TimmModel",
        name="test_efficientnet",
        num_classes=20,
        class_map=list(range(0, 20, 2)),
    )
    options = {**ONE_EPOCH, "model.teacher": teacher}
    # without the map: one line naming both class counts
    with pytest.raises(ValueError, match="student predicts 10 classes but the teacher 20"):
        from ssld_zoo.distill.runner import build_runner

        unmapped = dict(teacher)
        unmapped.pop("class_map")
        build_runner(
            tiny_recipe(tiny_tree, no_val=True, **{**options, "model.teacher": unmapped}),
            tmp_path / "unmapped",
            log_level="WARNING",
        )
    online = tiny_recipe(tiny_tree, no_val=True, **options)
    root = tmp_path / "cache"
    build_teacher_cache(online, root, views=2, topk=3)
    spec = TeacherCache(root).spec
    assert spec.num_classes == 10 and spec.teacher["name"] == "timm/test_efficientnet"
    assert spec.teacher["class_map"] == list(range(0, 20, 2))
    images = online.train_dataloader.dataset.to_dict()
    cached = tiny_recipe(
        tiny_tree,
        no_val=True,
        **options,
        **{
            "model.teacher_cache": str(root),
            "train_dataloader.collate_fn.type": "collate_cached",
            "train_dataloader.dataset": dict(
                _delete_=True, type="CachedViewDataset", cache=str(root), images=images
            ),
        },
    )
    student, loaded, card, _ = _train_and_load_back(cached, tmp_path / "wd")
    assert card["arch"] == TINY_ARCH and loaded.num_classes == 10
    assert card["teacher"] == "timm/test_efficientnet"


@pytest.mark.slow  # ~20 s each; the builder test below is the quick check
def test_torchvision_student_at_its_own_input_size(tiny_tree, tmp_path):
    recipe = tiny_recipe(
        tiny_tree,
        no_val=True,
        **ONE_EPOCH,
        **{
            "model.student": dict(
                _delete_=True, type="TorchvisionModel", name="mobilenet_v3_small", input_size=48
            )
        },
    )
    from ssld_zoo.distill.runner import build_runner

    runner = build_runner(recipe, tmp_path / "probe", log_level="WARNING")
    assert runner.model.student_input.input_size == 48  # the 32 px crops, resized for it
    student, _, card, _ = _train_and_load_back(recipe, tmp_path / "wd")
    assert card["arch"] == "torchvision/mobilenet_v3_small" and card["num_classes"] == 10


def test_an_importable_builder_is_a_student(tiny_tree, tmp_path):
    import ssld_zoo
    from ssld_zoo.distill.runner import build_runner

    recipe = tiny_recipe(
        tiny_tree,
        no_val=True,
        **ONE_EPOCH,
        **{
            "model.student": dict(
                _delete_=True,
                type="ImportedModel",
                builder="tests.distill.test_any_model:build_tiny_net",
            )
        },
    )
    assert build_runner(recipe, tmp_path / "probe", log_level="WARNING").model.num_classes == 10
    _, loaded, card, _ = _train_and_load_back(recipe, tmp_path / "wd")
    assert card["arch"] == "tests.distill.test_any_model:build_tiny_net"
    fresh = ssld_zoo.load(card["arch"], pretrained=False)  # the builder's own, untrained
    assert fresh.weight_card is None and fresh[-1].out_features == 1000


def build_tiny_net(num_classes: int = 1000) -> torch.nn.Module:
    """A custom module, as a user's ``my_pkg.models:build_net``."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, num_classes),
    )
