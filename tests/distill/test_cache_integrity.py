"""The teacher cache proves its own integrity (issue 25): each silent case, reproduced.

A flipped byte in a shard, an image replaced by another of the same size and name, a write
that runs out of room, the teacher's identity taken from its weights file, ``mine --cache``
with other weights, and the permissions of cache files. Each test builds its own small cache
over images it writes (uncompressed BMPs, so a replacement keeps the size exactly).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.distill.conftest import TINY_ARCH, tiny_recipe

REPO = Path(__file__).resolve().parents[2]


def _bmp(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (36, 36, 3), np.uint8)
    Image.fromarray(pixels).save(path)


def _tree(root: Path) -> dict[str, Path]:
    """2 classes x 4 training images, 4 unlabeled, 1 val image per class."""
    seed = 0
    for split, n in (("train", 4), ("val", 1)):
        for c in ("cat", "dog"):
            for i in range(n):
                seed += 1
                _bmp(root / split / c / f"{i}.bmp", seed)
    for i in range(4):
        _bmp(root / "unlabeled" / f"u{i}.bmp", 100 + i)
    return {k: root / k for k in ("train", "val", "unlabeled")}


def _weights(path: Path, seed: int = 1) -> str:
    """A random 10-class teacher as an exported weights file (with its model card)."""
    import ssld_zoo
    from ssld_zoo.registry import EvalTransform, WeightCard
    from ssld_zoo.weights.export import export_with_card

    torch.manual_seed(seed)
    model = ssld_zoo.load(TINY_ARCH, pretrained=False, num_classes=10)
    export_with_card(
        model.state_dict(),
        path,
        WeightCard(
            name=path.stem,
            arch=TINY_ARCH,
            urls=(path.name,),
            top1=None,
            top1_source="",
            num_classes=10,
            transform=EvalTransform(32, 32),
        ),
    )
    return str(path)


def _build(tmp: Path, shard_size: int = 5):
    """A tree, a teacher weights file and a 2-view cache over the tree's 12 images."""
    from ssld_zoo.distill.cache import build_teacher_cache

    tree = _tree(tmp / "data")
    weights = _weights(tmp / "teacher.safetensors")
    # the plain teacher: folding BatchNorm and probing precisions cost more than 12 images
    teacher = dict(
        type="ZooModel",
        name=TINY_ARCH,
        weights=weights,
        num_classes=10,
        fold_bn=False,
        precision="fp32",
        channels_last=False,
    )
    recipe = tiny_recipe(tree, folder=tmp, **{"model.teacher": teacher})
    root = tmp / "cache"
    build_teacher_cache(recipe, root, views=2, topk=3, shard_size=shard_size)
    return tree, weights, recipe, root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("integrity"))


@pytest.fixture
def fresh(built, tmp_path):
    """The module's cache copied for a test that damages or repairs it (one build per module)."""
    import shutil

    tree, weights, recipe, root = built
    shutil.copytree(root, tmp_path / "cache")
    return tree, weights, recipe, tmp_path / "cache"


def test_a_flipped_byte_in_a_shard_is_refused_naming_it(fresh):
    from ssld_zoo.distill.cache import CacheError, TeacherCache, build_teacher_cache

    tree, weights, recipe, root = fresh
    shard = root / "shard_00001.npy"
    good = shard.read_bytes()
    data = bytearray(good)
    data[-5] ^= 0x01  # a bit of the last record's teacher output
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=r"shard_00001\.npy: sha256 .* damaged"):
        TeacherCache(root)
    from ssld_zoo.distill.cache.verify import mark_for_rebuild, verify_cache

    report = verify_cache(root)
    assert not report.ok and report.shards == {1} and len(report.damaged) == 1
    assert mark_for_rebuild(report) == [1]
    res = build_teacher_cache(recipe, root, views=2, topk=3, shard_size=5)
    assert (res.built_shards, res.reused_shards) == (1, 2)
    assert shard.read_bytes() == good  # the rebuild is exact
    assert verify_cache(root).ok and TeacherCache(root).spec.num_images == 12


def test_a_replaced_image_is_refused_when_read_and_relabelled_on_request(fresh):
    tree, weights, recipe, root = fresh
    victim = tree["train"] / "dog" / "2.bmp"
    original = victim.read_bytes()
    _bmp(victim, 999)  # another picture, same size, same name
    assert victim.stat().st_size == len(original)
    try:
        _replaced_image_is_refused_and_relabelled(recipe, root, victim)
    finally:
        victim.write_bytes(original)  # the module's cache holds the original


def _replaced_image_is_refused_and_relabelled(recipe, root: Path, victim: Path) -> None:
    from ssld_zoo.distill.cache import (
        CachedViewDataset,
        CacheMismatchError,
        TeacherCache,
        build_teacher_cache,
    )
    from ssld_zoo.distill.recipes import train_images_cfg

    # the recipe's images with their train transform, as training from the cache reads them
    data = CachedViewDataset(train_images_cfg(recipe).to_dict(), TeacherCache(root))
    images = data.images
    row = [p for p, _ in images.samples].index(str(victim))
    assert data[(0, 0)] is not None  # the others are fine
    with pytest.raises(
        CacheMismatchError,
        match=rf"{victim}: changed .*same size, other "
        r"content.*--verify --repair",
    ) as e:
        data[(0, row)]
    assert type(e.value).__name__ == "ImageChangedError"
    from ssld_zoo.distill.cache.verify import mark_for_rebuild, verify_cache

    report = verify_cache(root)
    assert [line.split(":")[0] for line in report.changed] == [str(victim)]
    assert report.shards == {row // 5}
    mark_for_rebuild(report)
    build_teacher_cache(recipe, root, views=2, topk=3, shard_size=5)
    fresh = CachedViewDataset(images, TeacherCache(root))
    assert fresh[(0, row)] is not None and verify_cache(root).ok


def test_label_verify_and_repair_from_the_command_line(fresh, tmp_path, capsys):
    from ssld_zoo.cli.main import main

    tree, weights, recipe, root = fresh
    recipe.dump(str(tmp_path / "r.py"))
    args = ["label", str(tmp_path / "r.py"), "--out", str(root), "--verify"]
    assert main(args) == 0
    assert "12 cached images are those it was built on" in " ".join(capsys.readouterr().out.split())
    shard = root / "shard_00000.npy"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\xff")
    assert main(args) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "shard_00000.npy: sha256" in out and "1 shards to rebuild" in out
    assert main(args + ["--repair"]) == 0
    assert main(args) == 0
    assert main(["label", str(tmp_path / "r.py"), "--out", str(root)]) == 1
    assert "--views is required" in capsys.readouterr().err


def test_a_write_that_runs_out_of_room_names_the_file_and_the_cause(tmp_path):
    """RLIMIT_FSIZE in a subprocess: numpy says only "N requested and M written"."""
    script = textwrap.dedent(f"""
        import resource, numpy as np
        from pathlib import Path
        from ssld_zoo.distill.cache.build import _write_shard
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            _write_shard(Path({str(tmp_path)!r}), 0, np.zeros(10000, np.uint8))
        except OSError as e:
            print("ERROR", e)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        f"ERROR {tmp_path / 'shard_00000.npy'}: cannot be written: file too large" in proc.stdout
        and "RLIMIT_FSIZE" in proc.stdout
    )
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_no_space_left_names_the_file_and_the_cause(tmp_path):
    import errno

    from ssld_zoo.weights.fileops import WriteFailure, atomic_write

    def full(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(
        WriteFailure,
        match=rf"{tmp_path / 'scores.tsv'}: cannot be written: "
        r"no space left on the device holding",
    ):
        atomic_write(tmp_path / "scores.tsv", full)
    assert os.listdir(tmp_path) == []


def test_cache_files_follow_the_umask(built):
    root = built[3]
    # the process umask when the module's cache was built
    mask = int(
        next(line for line in open("/proc/self/status") if line.startswith("Umask:")).split()[1], 8
    )
    for name in (
        "manifest.json",
        "images.tsv",
        "scores.tsv",
        "shard_00000.npy",
        "shard_00000.json",
    ):
        assert (root / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_the_teacher_identity_hashes_its_weights_file_without_building_it(built, monkeypatch):
    from ssld_zoo.distill import distiller
    from ssld_zoo.distill.cache import TeacherCache, teacher_fingerprint
    from ssld_zoo.weights.fileops import sha256_of

    tree, weights, recipe, root = built

    def no_build(*a, **k):
        raise AssertionError("the teacher was built to fingerprint it")

    monkeypatch.setattr(distiller, "build_teacher_model", no_build)
    ident = teacher_fingerprint(recipe)
    assert ident["weights_sha256"] == sha256_of(Path(weights))
    assert TeacherCache(root).spec.teacher == ident


def test_mine_from_a_cache_checks_the_teachers_weights(built, tmp_path):
    from ssld_zoo.distill.cache import CacheMismatchError
    from ssld_zoo.distill.mining import mine

    tree, weights, recipe, root = built
    res = mine(TINY_ARCH, tree["unlabeled"], 2, tmp_path / "ok.tsv", cache=root, weights=weights)
    assert res.reused == 4 and res.scored == 0
    other = _weights(tmp_path / "other.safetensors", seed=2)
    with pytest.raises(
        CacheMismatchError,
        match=r"built with other weights of .* than "
        r".*other\.safetensors",
    ):
        mine(TINY_ARCH, tree["unlabeled"], 2, tmp_path / "no.tsv", cache=root, weights=other)
    copy = tmp_path / "same.safetensors"  # the same weights elsewhere are the same teacher
    copy.write_bytes(Path(weights).read_bytes())
    assert (
        mine(
            TINY_ARCH, tree["unlabeled"], 2, tmp_path / "ok2.tsv", cache=root, weights=str(copy)
        ).reused
        == 4
    )


def test_mine_from_a_cache_drops_near_duplicates_of_excluded_images(built, tmp_path):
    from PIL import Image, ImageOps

    from ssld_zoo.data.images import scan_unlabeled
    from ssld_zoo.distill.mining import duplicates_path, mine

    tree, weights, recipe, root = built
    pool = scan_unlabeled(tree["unlabeled"])
    (tmp_path / "val").mkdir()
    ImageOps.mirror(Image.open(pool[1]).convert("RGB")).save(tmp_path / "val" / "mirror.png")
    out = tmp_path / "ok.tsv"
    res = mine(
        TINY_ARCH,
        tree["unlabeled"],
        2,
        out,
        cache=root,
        weights=weights,
        exclude=[tmp_path / "val"],
        num_workers=0,
    )
    assert res.duplicates == 1 and res.reused == 3 and res.scored == 0
    rows = [r.split("\t") for r in duplicates_path(out).read_text().splitlines()[1:]]
    assert [r[:2] for r in rows] == [[pool[1], str(tmp_path / "val" / "mirror.png")]]
    assert pool[1] not in out.read_text()


def test_a_cache_of_the_previous_format_is_refused_naming_the_version(built, tmp_path):
    from ssld_zoo.distill.cache import CacheError, TeacherCache

    (tmp_path / "old").mkdir()
    m = json.loads((built[3] / "manifest.json").read_text())
    m["format_version"] = 2
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CacheError, match="format_version 2, this ssld-zoo reads version 3"):
        TeacherCache(tmp_path / "old")


def test_a_registered_teachers_identity_is_its_recorded_download_hash(monkeypatch):
    """A published teacher is recognised by the hash its download was recorded with when it
    first validated (weights/trust.py), without building it."""
    from ssld_zoo.distill import distiller
    from ssld_zoo.distill.cache.identity import teacher_identity
    from ssld_zoo.registry import get_weights
    from ssld_zoo.weights import trust

    card = get_weights("resnet50_vd_ssld")
    monkeypatch.setattr(
        trust, "recorded_sha256", lambda name: "ab" * 32 if name == card.file_name else None
    )
    monkeypatch.setattr(distiller, "build_teacher_model", lambda *a, **k: 1 / 0)
    for teacher in (
        dict(name="resnet50_vd_ssld"),
        dict(name="resnet50_vd", weights="resnet50_vd_ssld"),
    ):
        got = teacher_identity(teacher)["weights_sha256"]
        assert got == f"card:resnet50_vd_ssld:{card.sha256 or 'ab' * 32}", teacher
