"""What the teacher cache's integrity checks cost, at ImageNet scale, measured in one run.

    python benchmarks/cache_integrity.py [--images 1281167] [--views 10] [--topk 10]
        [--shard-size 4096] [--threads 1 2 8] [--photos ../shared/data/imagenette/train]
        [--dir /tmp/cache_bench] [--json out.json]

1. Shard checksums. A cache of ``--images`` records (random bytes in the real record layout:
   ``views`` x ``topk``) is written to ``--dir``; then opening it is timed without checksums
   (sizes only, as before), with every shard's sha256 checked on 1 thread and on each of
   ``--threads``, and per shard (the price of checking lazily at each shard's first use, paid
   again by every data-loader worker that maps it). The files were just written, so they are
   read from the page cache: the figures are hashing speed, the floor a cold disk adds to.
2. Image fingerprints. For real photos (``--photos``, ImageNet-sized JPEGs): the time to read
   a file, to fingerprint its bytes (BLAKE2b-64) and to decode it (what training does anyway),
   per image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_cache(root: Path, images: int, views: int, topk: int, shard_size: int) -> int:
    """A complete cache of random records; returns its size in bytes."""
    from ssld_zoo.distill.cache.build import _marker, _write_manifest, _write_shard
    from ssld_zoo.distill.cache.format import IMAGES, SCORES, CacheSpec, record_dtype
    from ssld_zoo.weights.fileops import sha256_of

    spec = CacheSpec(
        teacher={"name": "bench"},
        transform={},
        seed=0,
        views=views,
        topk=topk,
        kind="topk",
        num_classes=1000,
        num_images=images,
        images_sha256="",
        shard_size=shard_size,
        mean=(0.0,),
        std=(1.0,),
    )
    dtype = record_dtype(views, topk, 1000)
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    shards = []
    for s in range(spec.num_shards):
        rows = spec.shard_rows(s)[1]
        rec = np.frombuffer(rng.bytes(rows * dtype.itemsize), dtype=dtype)
        _write_shard(root, s, rec)
        shards.append({"file": f"shard_{s:05d}.npy", **json.loads(_marker(root, s).read_text())})
    (root / IMAGES).write_text("".join(f"/data/{i}.JPEG\t0\n" for i in range(images)))
    (root / SCORES).write_text("".join(f"/data/{i}.JPEG\t0\t0.5\n" for i in range(images)))
    files = {name: sha256_of(root / name) for name in (IMAGES, SCORES)}
    size = sum((root / x["file"]).stat().st_size for x in shards)
    _write_manifest(root, spec, complete=True, shards=shards, files=files, bytes=size)
    return size


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1_281_167)
    p.add_argument("--views", type=int, default=10)
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--shard-size", type=int, default=4096)
    p.add_argument("--threads", type=int, nargs="+", default=[2, 8])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--photos", default=str(REPO.parent / "shared" / "data" / "imagenette" / "train")
    )
    p.add_argument("--max-photos", type=int, default=400)
    p.add_argument("--dir", default="/tmp/ssld_cache_bench")
    p.add_argument("--keep", action="store_true", help="keep the written cache")
    p.add_argument("--json")
    a = p.parse_args()
    from ssld_zoo.distill.cache.format import TeacherCache

    root = Path(a.dir)
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    size = write_cache(root, a.images, a.views, a.topk, a.shard_size)
    rows = {
        "cache": f"{a.images} images x {a.views} views, top-{a.topk}: "
        f"{size / 1e9:.2f} GB in {len(list(root.glob('shard_*.npy')))} shards",
        "write_s": time.perf_counter() - t0,
        "cpus": os.cpu_count(),
    }
    rows["open_sizes_only_s"] = best(lambda: TeacherCache(root, verify=False), a.repeats)
    cache = TeacherCache(root, verify=False)
    for n in [1, *a.threads]:
        rows[f"open_verify_{n}_threads_s"] = best(lambda: cache.damaged_files(n), a.repeats)
    from ssld_zoo.weights.fileops import sha256_of

    shard = root / "shard_00000.npy"
    rows["one_shard_sha256_ms"] = 1e3 * best(lambda: sha256_of(shard), a.repeats * 3)
    rows["one_shard_mb"] = shard.stat().st_size / 1e6
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)

    photos = sorted(Path(a.photos).rglob("*.JPEG")) + sorted(Path(a.photos).rglob("*.jpg"))
    photos = photos[: a.max_photos]
    if photos:
        from ssld_zoo.distill.cache.identity import fingerprint
        from ssld_zoo.preprocess import decode_image

        read, hashed, decoded, sizes = [], [], [], []
        for path in photos:
            t0 = time.perf_counter()
            data = path.read_bytes()
            t1 = time.perf_counter()
            fingerprint(data)
            t2 = time.perf_counter()
            decode_image(str(path), data=data)
            t3 = time.perf_counter()
            read.append(t1 - t0)
            hashed.append(t2 - t1)
            decoded.append(t3 - t2)
            sizes.append(len(data))
        median_kb = statistics.median(sizes) / 1e3
        rows["photos"] = f"{len(photos)} JPEGs from {a.photos}, median {median_kb:.0f} KB"
        rows["read_ms"] = 1e3 * statistics.median(read)
        rows["fingerprint_ms"] = 1e3 * statistics.median(hashed)
        rows["decode_ms"] = 1e3 * statistics.median(decoded)
        rows["fingerprint_vs_decode"] = statistics.median(hashed) / statistics.median(decoded)

    width = max(map(len, rows))
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
