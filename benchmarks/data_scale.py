"""The data path at ImageNet scale, on synthetic entries: sample index and teacher cache.

    python benchmarks/data_scale.py [--entries 1281167] [--folder-entries 128000]
        [--shard-members 10000] [--views 8] [--topk 10] [--reads 300000]
        [--dir /tmp/ssld_data_scale] [--json out.json]

1. Sample index (start-up time and RAM per sample of ``ImageDataset``'s index, each measured
   in a fresh Python process: time to build it and the growth of the process's anonymous
   memory, RssAnon, which is what every DataLoader worker would copy):
   * ``list file``: ``--entries`` ImageNet-style paths (1,000 class folders) in one list file,
     read by today's ``SampleTable`` and, for comparison, into the former representation (a
     Python list of ``(path, label)`` tuples);
   * ``tar shards``: ``--entries`` samples (``key.jpg`` + ``key.cls``, 1-byte payloads: the
     index reads headers, never images) in shards of ``--shard-members``; the first start
     walks every tar header and saves each shard's index, later starts load those;
   * ``folder``: ``--folder-entries`` empty ``.JPEG`` files in class folders (a fraction:
     creating 1.28M files is itself minutes), walked as an ImageFolder root.
   Each figure is extrapolated linearly to 14M entries (ImageNet-22k).
2. Teacher cache at ``--entries`` images x ``--views`` views, top-``--topk``, 1,000 classes,
   written and read by the real code (``ssld_zoo.distill.cache``): the stand-in teacher's
   outputs are random top-k ids and probabilities drawn per shard (the I/O alone: no teacher
   forward, no softmax), so "build" is records + shard files + sha256 + scores.tsv +
   manifest. Then, in a fresh process: opening the cache (every shard's sha256 checked) and a
   ``CachedViewDataset`` over the recipe's image list, its RAM, and ``--reads`` random
   ``(image, view)`` reads through ``CachedViewDataset.stored_view`` on one thread (the
   cache's whole share of a training step; decoding the image is the loader's business).
   The files were just written, so they are read from the page cache.

Everything is written under ``--dir`` and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARGET = 14_000_000


def rss_anon() -> int:
    """Anonymous resident memory of this process, bytes (/proc/self/status RssAnon)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def imagenet_path(i: int, classes: int = 1000) -> str:
    c = i % classes
    return f"/data/imagenet/train/n{c:08d}/n{c:08d}_{i}.JPEG"


# ---- children: each measurement in its own process ------------------------------------------


def _former_list_of_tuples(list_file: str) -> list:
    """ImageDataset.samples before SampleTable: scan_unlabeled's list of paths (each through
    pathlib), then a list of ``(path, -1)`` tuples."""
    root = Path(list_file)
    paths = []
    for line in root.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line.split("\t")[0].strip())
        paths.append(str(p if p.is_absolute() else root.parent / p))
    return [(p, -1) for p in paths]


def child_index(kind: str, source: str) -> dict:
    import gc

    from ssld_zoo.data.images import ImageDataset  # imports paid before the clock starts

    gc.collect()
    base = rss_anon()
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "list_before":
        index = _former_list_of_tuples(source)
    elif kind == "folder":
        index = ImageDataset([source]).samples
    else:
        index = ImageDataset([], [source]).samples
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    gc.collect()
    own = index.nbytes if hasattr(index, "nbytes") else None
    return {
        "n": len(index),
        "s": seconds,
        "cpu_s": cpu,
        "bytes": rss_anon() - base,
        "own_bytes": own,
    }


def stored_view(ds, row: int, slot: int) -> tuple:
    """What ``CachedViewDataset.__getitem__`` reads from the cache for one view (its lines,
    without the image decode and crop): the record, the view of this slot, the seed, box,
    flip and the teacher's ids and log-probabilities as tensors."""
    import torch

    from ssld_zoo.distill.cache.dataset import view_index

    rec = ds.cache.record(ds.rows[row])
    v = view_index(ds.seed, ds.rows[row], slot, ds.views)
    return (
        int(rec["seed"][v]),
        rec["box"][v],
        bool(rec["flip"][v]),
        torch.from_numpy(rec["ids"][v].astype(np.int64)),
        torch.from_numpy(rec["logp"][v].astype(np.float32)),
    )


def child_cache(root: str, list_file: str, reads: int, views: int) -> dict:
    import gc

    import torch

    torch.set_num_threads(1)
    from ssld_zoo.data.images import ImageDataset, TrainViewTransform
    from ssld_zoo.distill.cache import CachedViewDataset, TeacherCache

    transform = TrainViewTransform(224)  # torchvision's import is not the cache's cost
    gc.collect()
    base = rss_anon()
    t0, c0 = time.perf_counter(), time.process_time()
    cache = TeacherCache(root)  # every shard's sha256 checked
    t_open, c_open = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    images = ImageDataset([], [list_file], transform=transform)
    ds = CachedViewDataset(images, cache)
    t_dataset, c_dataset = time.perf_counter() - t0, time.process_time() - c0
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(ds), reads).tolist()
    out = {"open_s": t_open, "open_cpu_s": c_open, "dataset_s": t_dataset}
    out["dataset_cpu_s"] = c_dataset
    # slots 0..views-1: the first pass over the stored views; later passes draw a per-image
    # permutation of them (view_index)
    for name, slots in (("first_pass", (0, views)), ("later_pass", (views, 2 * views))):
        picked = rng.integers(*slots, reads).tolist()
        t0, c0 = time.perf_counter(), time.process_time()
        for row, slot in zip(rows, picked):
            stored_view(ds, row, slot)
        out[f"{name}_views_per_s"] = reads / (time.perf_counter() - t0)
        out[f"{name}_views_per_cpu_s"] = reads / (time.process_time() - c0)
    gc.collect()
    out["anon_bytes"] = rss_anon() - base
    return out


def run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- writers of synthetic data ---------------------------------------------------------------


def write_list(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for start in range(0, n, 100_000):
            f.write("".join(imagenet_path(i) + "\n" for i in range(start, min(n, start + 100_000))))


def _ustar_header(name: bytes, size: int) -> bytes:
    """A ustar header (what tarfile writes for a plain file), built directly: tarfile's own
    objects take 10x longer, and 2.5M members are written here."""
    h = bytearray(512)
    h[: len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % 1_700_000_000
    h[148:156] = b" " * 8
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def write_tars(folder: Path, n: int, per_shard: int) -> int:
    """Tar shards of ``n`` samples (``key.jpg`` + ``key.cls``, one byte each, each member
    padded to 512 bytes as tar does); returns the number of shards."""
    folder.mkdir(parents=True)
    shards = 0
    for start in range(0, n, per_shard):
        parts = []
        for i in range(start, min(n, start + per_shard)):
            for ext, data in ((b"jpg", b"\xff"), (b"cls", b"%d" % (i % 1000))):
                parts += [_ustar_header(b"n%08d_%d.%s" % (i % 1000, i, ext), len(data)), data]
                parts.append(bytes(-len(data) % 512))
        parts.append(bytes(1024))  # the end-of-archive blocks
        (folder / f"train-{shards:06d}.tar").write_bytes(b"".join(parts))
        shards += 1
    if shards:  # the synthetic layout is a real tar: tarfile reads the first shard
        with tarfile.open(folder / "train-000000.tar") as tf:
            assert len(tf.getnames()) == 2 * min(n, per_shard)
    return shards


def write_folder(folder: Path, n: int) -> None:
    for i in range(n):
        c = folder / f"n{i % 1000:08d}"
        if i < 1000:
            c.mkdir(parents=True)
        (c / f"n{i % 1000:08d}_{i}.JPEG").touch()


def write_cache(root: Path, list_file: Path, n: int, views: int, topk: int) -> dict:
    """A teacher cache of ``n`` images by the real writer (random stand-in teacher outputs)."""
    from ssld_zoo.data.images import ImageDataset, TrainViewTransform
    from ssld_zoo.distill.cache.build import _finish, _write_manifest, _write_shard, cache_spec
    from ssld_zoo.distill.cache.format import IMAGES, record_dtype
    from ssld_zoo.weights.fileops import atomic_write

    images = ImageDataset([], [str(list_file)])
    spec = cache_spec(
        {},
        images.samples,
        {"name": "stand-in", "weights_sha256": "0" * 64},
        TrainViewTransform(224).settings,
        views=views,
        topk=topk,
        kind="topk",
        shard_size=4096,
        seed=0,
        num_classes=1000,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    )
    t0, c0 = time.perf_counter(), time.process_time()
    paths = [p for p, _ in images.samples]
    text = "".join(f"{p}\t-1\n" for p in paths)
    atomic_write(root / IMAGES, lambda tmp: Path(tmp).write_text(text))
    _write_manifest(root, spec, complete=False)
    dtype = record_dtype(views, topk, 1000)
    rng = np.random.default_rng(0)
    t_records = 0.0
    for s in range(spec.num_shards):
        t1 = time.perf_counter()
        rows = spec.shard_rows(s)[1]
        rec = np.zeros(rows, dtype=dtype)
        rec["ok"] = 1
        rec["seed"] = rng.integers(0, 2**63, (rows, views), dtype=np.uint64)
        rec["box"] = rng.random((rows, views, 4), dtype=np.float32)
        rec["flip"] = rng.integers(0, 2, (rows, views))
        rec["ids"] = rng.integers(0, 1000, (rows, views, topk))
        probs = -np.sort(-rng.random((rows, views, topk), dtype=np.float32), axis=-1)
        probs = probs / probs.sum(-1, keepdims=True) * 0.9
        # format 3: the kept classes' log-probabilities, then the log of the rest's mass (0.1)
        rec["logp"] = np.log(np.concatenate([probs, np.full_like(probs[..., :1], 0.1)], -1))
        rec["pred"] = rec["ids"][:, 0, 0]
        rec["conf"] = probs[:, 0, 0]
        t_records += time.perf_counter() - t1
        _write_shard(root, s, rec)
    size = _finish(root, spec, paths)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "build_s": seconds,
        "build_cpu_s": cpu,
        "stand_in_teacher_s": t_records,
        "images_per_s": n / seconds,
        "views_per_s": n * views / seconds,
        "shard_bytes": size,
        "disk_bytes": sum(f.stat().st_size for f in root.iterdir()),
    }


# ---- the table ----------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=1_281_167)
    p.add_argument("--folder-entries", type=int, default=128_000)
    p.add_argument("--shard-members", type=int, default=10_000)
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--reads", type=int, default=300_000)
    p.add_argument("--dir", default="/tmp/ssld_data_scale")
    p.add_argument("--json")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == "cache":
            res = child_cache(rest[0], rest[1], int(rest[2]), int(rest[3]))
        else:
            res = child_index(kind, rest[0])
        print(json.dumps(res))
        return

    root = Path(a.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    n = a.entries
    rows: list[tuple[str, int, dict]] = []
    try:
        lst = root / "train.txt"
        write_list(lst, n)
        rows.append(
            (
                "list file, former list of (path, label) tuples",
                n,
                run_child("list_before", str(lst)),
            )
        )
        rows.append(("list file, SampleTable", n, run_child("list", str(lst))))
        t0 = time.perf_counter()
        shards = write_tars(root / "tars", n, a.shard_members)
        tar_write_s = time.perf_counter() - t0
        src = str(root / "tars" / f"train-{{000000..{shards - 1:06d}}}.tar")
        rows.append(
            (f"tar shards ({shards}), first start: headers walked", n, run_child("tar", src))
        )
        rows.append((f"tar shards ({shards}), saved member indices", n, run_child("tar", src)))
        shutil.rmtree(root / "tars")
        write_folder(root / "folder", a.folder_entries)
        rows.append(
            (
                "ImageFolder walk, SampleTable",
                a.folder_entries,
                run_child("folder", str(root / "folder")),
            )
        )
        shutil.rmtree(root / "folder")

        load = os.getloadavg()[0]
        print(
            f"\nSample index, {os.cpu_count()} CPUs, load average {load:.1f} "
            f"(python {sys.version.split()[0]}): wall time (CPU time of the process)\n"
        )
        print(
            "| source | entries | start-up | RAM growth, bytes/sample (index's own) "
            "| at 14M: start-up | at 14M: RAM |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        table = []
        for name, count, r in rows:
            assert r["n"] == count, (name, r["n"], count)
            per_s, per_cpu, per_b = r["s"] / count, r["cpu_s"] / count, r["bytes"] / count
            own = f" ({r['own_bytes'] / count:.0f})" if r["own_bytes"] else ""
            table.append(
                {
                    "source": name,
                    **r,
                    "s_14m": per_s * TARGET,
                    "cpu_s_14m": per_cpu * TARGET,
                    "bytes_per_sample": per_b,
                }
            )
            print(
                f"| {name} | {count:,} | {r['s']:.2f} s ({r['cpu_s']:.2f}) | {per_b:.0f}{own} | "
                f"{per_s * TARGET:.1f} s ({per_cpu * TARGET:.1f}) | "
                f"{per_b * TARGET / 1e9:.2f} GB |"
            )
        print(f"\n(writing the {shards} synthetic tars took {tar_write_s:.0f} s)")

        cache_root = root / "cache"
        built = write_cache(cache_root, lst, n, a.views, a.topk)
        read = run_child("cache", str(cache_root), str(lst), str(a.reads), str(a.views))
        print(
            f"\nTeacher cache, {n:,} images x {a.views} views, top-{a.topk} (1,000 classes), "
            f"load average {os.getloadavg()[0]:.1f}\n"
        )
        print("| measure | value |")
        print("|---|---:|")
        lines = [
            (
                "build (write records, sha256, scores, manifest)",
                f"{built['build_s']:.1f} s ({built['build_cpu_s']:.1f} s CPU)",
            ),
            (
                "  of which the stand-in teacher's random outputs",
                f"{built['stand_in_teacher_s']:.1f} s",
            ),
            (
                "build throughput",
                f"{built['images_per_s']:,.0f} images/s = {built['views_per_s']:,.0f} views/s",
            ),
            (
                "shards on disk",
                f"{built['shard_bytes'] / 1e9:.2f} GB "
                f"({built['shard_bytes'] / (n * a.views):.0f} B/view)",
            ),
            (
                "whole cache on disk (+ images.tsv, scores.tsv)",
                f"{built['disk_bytes'] / 1e9:.2f} GB",
            ),
            (
                "open with every sha256 checked",
                f"{read['open_s']:.1f} s ({read['open_cpu_s']:.1f} s CPU)",
            ),
            (
                "ImageDataset + CachedViewDataset over the image list",
                f"{read['dataset_s']:.1f} s ({read['dataset_cpu_s']:.1f} s CPU)",
            ),
            (
                "RAM while training from it (RssAnon growth)",
                f"{read['anon_bytes'] / 1e6:.0f} MB ({read['anon_bytes'] / n:.0f} B/image)",
            ),
            (
                "random-access reads, 1 thread, first pass over the views",
                f"{read['first_pass_views_per_s']:,.0f} views/s "
                f"({read['first_pass_views_per_cpu_s']:,.0f} per CPU-second)",
            ),
            (
                "random-access reads, 1 thread, later passes (shuffled views)",
                f"{read['later_pass_views_per_s']:,.0f} views/s "
                f"({read['later_pass_views_per_cpu_s']:,.0f} per CPU-second)",
            ),
        ]
        for k, v in lines:
            print(f"| {k} | {v} |")
        if a.json:
            Path(a.json).write_text(
                json.dumps({"index": table, "cache": {**built, **read}}, indent=2)
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
