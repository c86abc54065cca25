"""Data stream (reproducible crops, list files, unreadable files) and teacher mining."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssld_zoo.data.images import ImageDataset, build_train_transform, collate_images, scan_unlabeled
from tests.distill.conftest import TINY_ARCH


def test_crops_are_a_function_of_seed_epoch_and_index(tiny_tree):
    tf = build_train_transform(24, scale=(0.2, 1.0))
    ds = ImageDataset([tiny_tree["train"]], [tiny_tree["unlabeled"]], tf, seed=3)
    torch.manual_seed(0)
    a = ds[(1, 5)][0]
    torch.manual_seed(123)  # the global generator does not matter
    assert torch.equal(a, ds[(1, 5)][0])
    assert not torch.equal(a, ds[(2, 5)][0])  # another epoch, another crop
    other = ImageDataset([tiny_tree["train"]], [tiny_tree["unlabeled"]], tf, seed=4)
    assert not torch.equal(a, other[(1, 5)][0])
    state = torch.get_rng_state()
    ds[(0, 1)]
    assert torch.equal(state, torch.get_rng_state())  # caller's random state untouched


def test_labeled_and_unlabeled_in_one_stream(tiny_tree):
    ds = ImageDataset([tiny_tree["train"]], [tiny_tree["unlabeled"]])
    assert len(ds) == 30 + 11 and ds.num_labeled == 30 and len(ds.classes) == 10
    assert [lab for _, lab in ds.samples[30:]] == [-1] * 11
    bad = next(i for i, (p, _) in enumerate(ds.samples) if p.endswith("zz_broken.jpg"))
    batch = collate_images([ds[0], ds[bad], ds[31]])
    assert batch["inputs"].shape[0] == 2 and batch["skipped"] == 1
    assert batch["labels"].tolist() == [ds.samples[0][1], -1]


def test_list_file_roots(tiny_tree, tmp_path):
    imgs = sorted(p for p in Path(tiny_tree["unlabeled"]).iterdir() if p.suffix == ".jpg")[:3]
    lst = tmp_path / "pool.txt"
    lst.write_text(
        "# comment\n" + f"{imgs[0]}\t4\t0.9\n" + f"{imgs[1]}\n\n" + f"{imgs[2].name}\t1\t0.5\n"
    )
    (tmp_path / imgs[2].name).symlink_to(imgs[2])  # relative to the list file
    assert scan_unlabeled(lst) == [str(imgs[0]), str(imgs[1]), str(tmp_path / imgs[2].name)]


def test_missing_roots_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="labeled data root .*nope"):
        ImageDataset([tmp_path / "nope"])
    with pytest.raises(FileNotFoundError, match="unlabeled data root .*gone"):
        ImageDataset([], [tmp_path / "gone"])


def test_mine_keeps_top_k_per_class_and_resumes(tiny_tree, tmp_path):
    import ssld_zoo
    from ssld_zoo.distill.mining import mine, read_scores, scores_path

    torch.manual_seed(0)
    teacher = ssld_zoo.load(TINY_ARCH, pretrained=False, num_classes=3).eval()
    out = tmp_path / "mined.txt"
    tf = dict(input_size=32, resize=32)
    calls = []
    res = mine(
        TINY_ARCH,
        tiny_tree["unlabeled"],
        2,
        out,
        model=teacher,
        transform=tf,
        batch_size=4,
        num_workers=0,
        device="cpu",
        progress=lambda d, t: calls.append((d, t)),
    )
    assert res.scored == 11 and res.reused == 0 and res.unreadable == 1
    assert calls[-1] == (11, 11)
    rows = [ln.split("\t") for ln in out.read_text().splitlines() if not ln.startswith("#")]
    by_class: dict[int, list[float]] = {}
    for path, c, conf in rows:
        by_class.setdefault(int(c), []).append(float(conf))
    assert all(len(v) <= 2 and v == sorted(v, reverse=True) for v in by_class.values())
    assert sum(len(v) for v in by_class.values()) == res.selected
    # the confidences are the teacher's softmax maxima
    from ssld_zoo.data.images import read_image
    from ssld_zoo.registry import EvalTransform

    t = EvalTransform(32, 32).resize_crop()
    path, c, conf = rows[0]
    x = t(read_image(path)).float()[None] / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        p = teacher(x).softmax(-1)[0]
    assert int(p.argmax()) == int(c) and float(p.max()) == pytest.approx(float(conf), abs=1e-5)
    # the selection is usable as an unlabeled root
    assert ImageDataset([], [out]).num_labeled == 0
    # resume: a partial scores file (as a kill leaves it, last line cut) is reused
    lines = scores_path(out).read_text().splitlines(keepends=True)
    scores_path(out).write_text("".join(lines[:5]) + lines[5][:10])
    res2 = mine(
        TINY_ARCH,
        tiny_tree["unlabeled"],
        2,
        out,
        model=teacher,
        transform=tf,
        batch_size=4,
        num_workers=0,
        device="cpu",
    )
    assert res2.reused == 5 and res2.scored == 6
    assert len(read_scores(scores_path(out))) == 11
    rows2 = [ln.split("\t") for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert [r[:2] for r in rows2] == [r[:2] for r in rows]
    # min_conf filters
    res3 = mine(
        TINY_ARCH,
        tiny_tree["unlabeled"],
        2,
        tmp_path / "none.txt",
        model=teacher,
        transform=tf,
        min_conf=1.0,
        num_workers=0,
        device="cpu",
    )
    assert res3.selected == 0
