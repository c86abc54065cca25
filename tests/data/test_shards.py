"""WebDataset-style tar shards as sources: tiny JPEG shards written here, read by the distill
dataset (labeled and unlabeled), split over ranks and workers, built into a teacher cache by
``ssld-zoo label``, mined by ``ssld-zoo mine``, and refused by name when missing or damaged."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ssld_zoo.data import shards
from ssld_zoo.data.images import (
    EpochIndexSampler,
    ImageDataset,
    collate_images,
    read_image,
    scan_unlabeled,
)

TINY_ARCH = "mobilenetv3_small_x0_35"


def _jpeg(seed: int, size: int = 24) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def write_shards(
    folder: Path, prefix: str, counts: list[int], classes: int | None = 3, seed: int = 0
) -> dict[str, tuple[bytes, int]]:
    """``prefix-000000.tar``...: ``counts[s]`` samples in shard s (``key.jpg`` + ``key.cls``
    when ``classes``). Returns ``{sample name <tar>#<member>: (jpeg bytes, label)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[bytes, int]] = {}
    k = 0
    for s, n in enumerate(counts):
        tar = folder / f"{prefix}-{s:06d}.tar"
        with tarfile.open(tar, "w", format=tarfile.USTAR_FORMAT) as tf:
            for _ in range(n):
                key, data = f"{prefix}_{k:05d}", _jpeg(seed * 1000 + k)
                label = k % classes if classes else -1
                _add(tf, f"{key}.jpg", data)
                if classes:
                    _add(tf, f"{key}.cls", str(label).encode())
                out[f"{tar}#{key}.jpg"] = (data, label)
                k += 1
    return out


@pytest.fixture(scope="module")
def shard_tree(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shards")
    train = write_shards(root / "train", "train", [5, 4, 3])
    (root / "train" / "classes.txt").write_text("cat\ndog\nfox\n")
    pool = write_shards(root / "pool", "pool", [4, 4], classes=None, seed=1)
    val = write_shards(root / "val", "val", [3], seed=2)
    return {
        "root": root,
        "train": train,
        "pool": pool,
        "val": val,
        "train_src": str(root / "train" / "train-{000000..000002}.tar"),
        "pool_src": str(root / "pool"),
        "val_src": str(root / "val" / "val-000000.tar"),
    }


def test_brace_patterns_and_shard_folders(tmp_path):
    assert shards.expand_braces("a-{008..011}.tar") == [
        "a-008.tar",
        "a-009.tar",
        "a-010.tar",
        "a-011.tar",
    ]
    assert shards.expand_braces("{x,y}-{1..2}.tar") == ["x-1.tar", "x-2.tar", "y-1.tar", "y-2.tar"]
    with pytest.raises(ValueError, match="runs backwards"):
        shards.expand_braces("a-{3..1}.tar")
    assert shards.split_member("/d/a.tar#k.1.jpg") == ("/d/a.tar", "k.1.jpg")
    assert shards.split_member("/d/a#b.jpg") is None
    (tmp_path / "a.tar").write_bytes(bytes(1024))
    assert shards.is_shard_source(tmp_path) and shards.is_shard_source(tmp_path / "x-{1..2}.tar")
    (tmp_path / "cat").mkdir()  # an ImageFolder root with an archive beside its classes
    assert not shards.is_shard_source(tmp_path)


def test_labeled_and_unlabeled_shards_in_one_stream(shard_tree):
    ds = ImageDataset([shard_tree["train_src"]], [shard_tree["pool_src"]])
    assert ds.classes == ["cat", "dog", "fox"]  # classes.txt beside the shards
    assert len(ds) == 12 + 8 and ds.num_labeled == 12
    want = {**shard_tree["train"], **shard_tree["pool"]}
    assert [p for p, _ in ds.samples] == list(want)  # shard order, then member order
    for i, (path, label) in enumerate(ds.samples):
        data, y = want[path]
        assert label == y and shards.read_bytes(path) == data
    x, label, i = ds[3]
    assert x.dtype == torch.uint8 and x.shape == (3, 24, 24) and label == 0 and i == 3
    assert scan_unlabeled(shard_tree["pool_src"]) == list(shard_tree["pool"])
    # the member index was saved beside each shard and is what a second start reads
    tar = shards.shard_files(shard_tree["train_src"])[0]
    assert Path(tar + ".idx.npz").is_file()
    again = ImageDataset([shard_tree["train_src"]], [shard_tree["pool_src"]])
    assert list(again.samples) == list(ds.samples)
    # without classes.txt the .cls indices name the classes
    val = ImageDataset([shard_tree["val_src"]])
    assert val.classes == ["0", "1", "2"] and val.samples.labels.tolist() == [0, 1, 2]


def test_a_rewritten_shard_is_reindexed(tmp_path):
    first = write_shards(tmp_path, "s", [3])
    tar = next(iter(first)).split("#")[0]
    assert len(shards.shard_index(tar)) == 3
    st = os.stat(tar)
    second = write_shards(tmp_path, "s", [5], seed=7)
    os.utime(tar, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the stamp changes
    idx = shards.shard_index(tar)
    assert len(idx) == 5 and [f"{tar}#{n}" for n in idx.member_names()] == list(second)
    assert shards.read_bytes(next(iter(second))) == next(iter(second.values()))[0]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_member_names_in_gnu_and_pax_tars(tmp_path, fmt):
    tar = tmp_path / "long.tar"
    key = "deep/" + "x" * 150 + "/\u00e9l\u00e8ve"  # over ustar's 100 bytes, not ASCII
    with tarfile.open(tar, "w", format=fmt) as tf:
        _add(tf, f"{key}.jpg", _jpeg(0))
        _add(tf, f"{key}.cls", b"2")
        _add(tf, "short.png", _jpeg(1))
    idx = shards.shard_index(tar)
    assert idx.member_names() == [f"{key}.jpg", "short.png"] and idx.labels.tolist() == [2, -1]
    assert shards.read_bytes(f"{tar}#{key}.jpg") == _jpeg(0)


def test_ranks_and_workers_cover_every_sample_once(shard_tree):
    """Samples split over W ranks (the sampler) and each rank's batches over its DataLoader
    workers: every sample exactly once per epoch, each with its own label."""
    from torch.utils.data import DataLoader

    ds = ImageDataset([shard_tree["train_src"]], [shard_tree["pool_src"]])
    for world, workers in ((1, 0), (2, 2), (3, 0)):
        seen = []
        for rank in range(world):
            sampler = EpochIndexSampler(ds, shuffle=True, seed=3, round_up=False)
            sampler.rank, sampler.world_size = rank, world
            sampler.set_epoch(1)
            loader = DataLoader(
                ds, batch_size=3, sampler=sampler, num_workers=workers, collate_fn=collate_images
            )
            for batch in loader:
                assert batch["skipped"] == 0
                got = batch["indices"].tolist()
                assert batch["labels"].tolist() == [ds.samples[i][1] for i in got]
                seen += got
        assert sorted(seen) == list(range(len(ds))), (world, workers)


def test_missing_and_damaged_shards_are_named(shard_tree, tmp_path):
    missing = str(shard_tree["root"] / "train" / "train-{000000..000004}.tar")
    with pytest.raises(shards.ShardError, match=r"train-000003\.tar does not exist"):
        ImageDataset([missing])
    junk = tmp_path / "junk" / "bad-000000.tar"
    junk.parent.mkdir()
    junk.write_bytes(b"\x07" * 3000)
    with pytest.raises(shards.ShardError, match=r"bad-000000\.tar: not a readable tar"):
        ImageDataset([], [str(junk)])
    # a shard cut short in the middle of a member
    good = next(iter(write_shards(tmp_path / "cut", "cut", [4]))).split("#")[0]
    data = Path(good).read_bytes()
    Path(good).write_bytes(data[: len(data) // 2])
    with pytest.raises(shards.ShardError, match=r"cut-000000\.tar"):
        ImageDataset([], [good])
    # labeled shards need key.cls
    write_shards(tmp_path / "nocls", "n", [2], classes=None)
    with pytest.raises(ValueError, match=r"n-000000\.tar: n_00000\.jpg has no \.cls"):
        ImageDataset([str(tmp_path / "nocls")])
    # a member gone from the index at read time: skipped by the training reader, naming it
    assert read_image(f"{good.replace('cut-', 'gone-')}#x.jpg") is None
    with pytest.raises(FileNotFoundError, match=r"holds no image member 'zz\.jpg'"):
        shards.read_bytes(next(iter(shard_tree["pool"])).split("#")[0] + "#zz.jpg")


def _tiny_teacher(classes: int) -> torch.nn.Module:
    import ssld_zoo

    torch.manual_seed(0)
    return ssld_zoo.load(TINY_ARCH, pretrained=False, num_classes=classes).eval()


def test_mine_takes_a_shard_pool(shard_tree, tmp_path):
    from ssld_zoo.distill.mining import mine

    out = tmp_path / "mined.txt"
    res = mine(
        TINY_ARCH,
        [shard_tree["pool_src"]],
        2,
        out,
        model=_tiny_teacher(3),
        transform=dict(input_size=24, resize=24),
        batch_size=4,
        num_workers=0,
        device="cpu",
    )
    assert res.scored == 8 and res.unreadable == 0 and res.selected >= 1
    rows = [ln.split("\t")[0] for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert rows and set(rows) <= set(shard_tree["pool"])
    # the mined list of tar members is an unlabeled root like any list file
    ds = ImageDataset([], [out])
    assert [p for p, _ in ds.samples] == rows and ds[0] is not None


def test_label_builds_a_cache_over_shards_and_training_reads_it(shard_tree, tmp_path):
    from ssld_zoo.cli.main import main
    from ssld_zoo.distill.cache import CachedViewDataset, TeacherCache
    from ssld_zoo.distill.cache.verify import verify_cache
    from tests.distill.conftest import tiny_recipe, write_recipe

    tree = {k: shard_tree[f"{k}_src"] for k in ("train", "val")}
    tree["unlabeled"] = shard_tree["pool_src"]
    recipe = tiny_recipe(tree, folder=tmp_path, **{"model.teacher.num_classes": 3})
    path = write_recipe(tmp_path / "r.py", recipe)
    out = tmp_path / "cache"
    argv = ["label", str(path), "--views", "2", "--topk", "2", "--out", str(out)]
    assert main(argv + ["--num-workers", "0", "--device", "cpu"]) == 0
    cache = TeacherCache(out)
    assert cache.paths == [*shard_tree["train"], *shard_tree["pool"]]  # `<tar>#<member>` keys
    assert verify_cache(out).ok  # each member's size and fingerprint match its record
    ds = CachedViewDataset(recipe["train_dataloader"]["dataset"], cache)
    views = ds[(1, 4)]
    assert len(views) == 1 and views[0][0].shape == (3, 32, 32) and views[0][1] == 1


@pytest.mark.slow
def test_distill_trains_from_shards(shard_tree, tmp_path):
    """`ssld-zoo distill`'s runner over labeled + unlabeled shards, validating on a shard."""
    from ssld_zoo.distill.runner import run_distill
    from tests.distill.conftest import tiny_recipe

    tree = {k: shard_tree[f"{k}_src"] for k in ("train", "val")}
    tree["unlabeled"] = shard_tree["pool_src"]
    recipe = tiny_recipe(tree, folder=tmp_path, **{"train_cfg.max_epochs": 1})
    res = run_distill(recipe, tmp_path / "wd", log_level="WARNING", export=False)
    assert [h["epoch"] for h in res.history] == [1]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in res.history)
    assert 0 <= res.metrics["top1"] <= 100
