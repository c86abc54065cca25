"""Which near-duplicate detector `ssld-zoo mine --exclude` should use: recall per kind of copy,
precision against other photos of the same classes, measured on planted duplicates.

    .venv/bin/python benchmarks/near_duplicates.py [--data ../shared/data/imagenette]
        [--exclude 300] [--negatives 1000] [--arch mobilenetv3_small_x0_35] [--seed 0]

``--exclude`` val photos are the excluded set; the pool holds, for each, a copy made by each
kind of transform (resized 0.4-1.6x; re-encoded as JPEG quality 20-50; mirrored; cropped to
80-95 % at a random place; all four at once), plus ``--negatives`` train photos of the same
classes (hard negatives: same objects, other photos). Copies are written to a temporary folder
and read back as ``mine`` reads them. Each method's threshold is chosen on the first half of
the excluded images and negatives (the largest with no false positive there) and its recall
and precision are reported on the other half. Methods: the shipped 256-bit DCT hash against
each excluded image's crop views and mirrors (``ssld_zoo.data.near_duplicates``); the same
without crop views; a 64-bit DCT hash and a 64-bit difference hash with the crop views; the
cosine of a randomly initialised zoo model's pooled features (no pretrained weights can be
downloaded here, so these are a weak stand-in for a teacher's), with and without crop views.
Then the detector as ``mine`` runs it (files, the shipped thresholds) on the test half,
with and without its colour check, and on the real pool against the whole val set (listing
what it flags: Imagenette's pool and val are different photos, so every flag there is to be
looked at). CPU only; a few minutes (torch in one thread).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("resize", "jpeg", "flip", "crop", "all")


def _jpeg(img, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_copy(img, kind: str, rng: random.Random) -> bytes:
    """The JPEG bytes of one planted copy of ``img``."""
    from PIL import Image, ImageOps

    quality = 90
    if kind in ("crop", "all"):
        s = rng.uniform(0.8, 0.95)
        w, h = img.width * s, img.height * s
        left, top = rng.uniform(0, img.width - w), rng.uniform(0, img.height - h)
        img = img.crop((left, top, left + w, top + h))
    if kind in ("flip", "all"):
        img = ImageOps.mirror(img)
    if kind in ("resize", "all"):
        s = rng.uniform(0.4, 1.6)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.BICUBIC)
    if kind in ("jpeg", "all"):
        quality = rng.randint(20, 50)
    return _jpeg(img, quality)


def _views(img, views, one: Callable) -> np.ndarray:
    """``one`` of each view (crop) of ``img`` and of its mirror."""
    from PIL import ImageOps

    crops = []
    for im in (img, ImageOps.mirror(img)):
        for scale, fx, fy in views:
            w, h = im.width * scale, im.height * scale
            left, top = (im.width - w) * fx, (im.height - h) * fy
            crops.append(im if scale == 1.0 else im.crop((left, top, left + w, top + h)))
    return _many(one, crops)


def _many(one: Callable, imgs) -> np.ndarray:
    return one.many(imgs) if hasattr(one, "many") else np.stack([one(im) for im in imgs])


def phash64(img) -> np.ndarray:
    """A 64-bit DCT hash (32x32 grey, 8x8 lowest frequencies), as imagehash's phash."""
    from PIL import Image

    from ssld_zoo.data.near_duplicates import _dct_rows

    d = _dct_rows(32, 8)
    g = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BILINEAR), np.float64)
    c = (d @ g @ d.T).ravel()
    return np.packbits(c > np.median(c))


def dhash64(img) -> np.ndarray:
    """A 64-bit difference hash (9x8 grey, left < right)."""
    from PIL import Image

    g = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.BILINEAR), np.float64)
    return np.packbits((g[:, 1:] > g[:, :-1]).ravel())


def hamming_min(pool: np.ndarray, excl: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Each pool hash's distance to the nearest excluded image (any of its views)."""
    from ssld_zoo.data.near_duplicates import ExcludeIndex

    pad = (-pool.shape[1]) % 8  # 64-bit words
    pool = np.pad(pool, ((0, 0), (0, pad)))
    excl = np.pad(excl, ((0, 0), (0, pad)))
    return ExcludeIndex([""] * (owners.max() + 1), excl, owners).nearest(pool)[1].astype(float)


def cosine_min(pool: np.ndarray, excl: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """1 - the highest cosine of each pool feature with any excluded view."""
    return 1.0 - (pool @ excl.T).max(1)


class Features:
    """Pooled features of a randomly initialised zoo model, L2-normalised, batched: call
    :meth:`many` on a list of images (one image: ``__call__``)."""

    def __init__(self, arch: str, side: int = 96):
        import torch

        import ssld_zoo

        torch.manual_seed(0)
        self.model = ssld_zoo.load(arch, pretrained=False).eval()
        self.side = side
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def many(self, imgs) -> np.ndarray:
        import torch
        from PIL import Image

        size = (self.side, self.side)
        x = np.stack(
            [np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR)) for im in imgs]
        )
        t = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - self.mean) / self.std
        out = []
        with torch.inference_mode():
            for chunk in t.split(256):
                f = self.model.forward_head(self.model.forward_features(chunk), pre_logits=True)
                out.append(torch.nn.functional.normalize(f.flatten(1), dim=1).numpy())
        return np.concatenate(out)

    def __call__(self, img) -> np.ndarray:
        return self.many([img])[0]


def main(argv: list[str] | None = None) -> int:
    from ssld_zoo.data import near_duplicates as nd
    from ssld_zoo.preprocess import decode_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("SSLD_ZOO_TEST_DATA", ROOT.parent / "shared" / "data"))
    p.add_argument("--data", type=Path, default=default / "imagenette")
    p.add_argument("--exclude", type=int, default=300, help="val photos excluded")
    p.add_argument("--negatives", type=int, default=1000, help="train photos in the pool")
    p.add_argument("--arch", default="mobilenetv3_small_x0_35", help="random-init feature model")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the numbers do not depend on it; a shared machine stays usable

    rng = random.Random(args.seed)
    val = sorted(str(q) for q in (args.data / "val").glob("*/*"))
    train = sorted(str(q) for q in (args.data / "train").glob("*/*"))
    if not val or not train:
        p.error(f"--data {args.data}: expected train/<class>/ and val/<class>/ images")
    excluded = rng.sample(val, args.exclude)
    negatives = rng.sample(train, args.negatives)

    def read(path: str):
        return decode_image(path, reduce_to=nd._DECODE_SIDE)  # as mine reads them

    workdir = tempfile.TemporaryDirectory(prefix="near_dup_")  # removed at exit, never the repo
    tmp = workdir.name
    copies: dict[str, list[str]] = {k: [] for k in KINDS}
    for i, path in enumerate(excluded):
        img = decode_image(path)
        for kind in KINDS:
            dest = Path(tmp) / kind / f"{i:04d}.jpg"
            dest.parent.mkdir(exist_ok=True)
            dest.write_bytes(make_copy(img, kind, rng))
            copies[kind].append(str(dest))
    excl_imgs = [read(q) for q in excluded]
    pool_imgs = {k: [read(q) for q in v] for k, v in copies.items()}
    neg_imgs = [read(q) for q in negatives]

    feat = Features(args.arch)
    methods = {
        "phash256 + crop views (shipped)": (nd.image_hash, nd.VIEWS, hamming_min),
        "phash256, image + mirror": (nd.image_hash, nd.VIEWS[:1], hamming_min),
        "phash64 + crop views": (phash64, nd.VIEWS, hamming_min),
        "dhash64 + crop views": (dhash64, nd.VIEWS, hamming_min),
        f"features ({args.arch}, random init), image + mirror": (feat, nd.VIEWS[:1], cosine_min),
        f"features ({args.arch}, random init) + crop views": (feat, nd.VIEWS, cosine_min),
    }
    half = args.exclude // 2
    nhalf = args.negatives // 2
    print(
        f"{args.exclude} excluded val photos ({half} calibrate the threshold, "
        f"{args.exclude - half} test it), {args.negatives} same-class train photos as "
        f"negatives ({nhalf} / {args.negatives - nhalf}); data {args.data}"
    )
    header = ["method", "threshold", *KINDS, "precision", "false pos."]
    rows = []
    for name, (one, views, distance) in methods.items():
        t0 = time.perf_counter()
        ex = [_views(im, views, one) for im in excl_imgs]
        owners = np.concatenate([np.full(len(v), k) for k, v in enumerate(ex)])
        ex_all = np.concatenate(ex)

        def dists(imgs, lo, hi):
            # each pool image against the excluded half it belongs to
            sel = (owners >= lo) & (owners < hi)
            return distance(_many(one, imgs), ex_all[sel], owners[sel] - lo)

        cal_neg = dists(neg_imgs[:nhalf], 0, half)
        step = 1.0 if distance is hamming_min else 1e-6
        threshold = cal_neg.min() - step  # the largest with no false positive on calibration
        test_neg = dists(neg_imgs[nhalf:], half, args.exclude)
        recalls, tp, fn = [], 0, 0
        test_pos = {}
        for kind in KINDS:
            d = dists(pool_imgs[kind][half:], half, args.exclude)
            test_pos[kind] = d
            hit = int((d <= threshold).sum())
            tp, fn = tp + hit, fn + len(d) - hit
            recalls.append(f"{hit / len(d):.3f}")
        fp = int((test_neg <= threshold).sum())
        precision = tp / (tp + fp) if tp + fp else float("nan")
        fmt = f"{threshold:.0f}" if step == 1.0 else f"cos >= {1 - threshold:.4f}"
        rows.append([name, fmt, *recalls, f"{precision:.4f}", f"{fp}/{len(test_neg)}"])
        if name.endswith("(shipped)"):
            shipped_test = (test_neg, test_pos)
        print(f"  {name}: {time.perf_counter() - t0:.1f} s, {rows[-1]}", file=sys.stderr)

    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))

    test_neg, test_pos = shipped_test
    print(
        f"\nshipped method on the test half, by max_distance (MAX_DISTANCE = {nd.MAX_DISTANCE}); "
        f"negatives' nearest distance: min {test_neg.min():.0f}, "
        f"1st percentile {np.percentile(test_neg, 1):.0f}, median {np.median(test_neg):.0f}"
    )
    print("| max_distance | " + " | ".join(KINDS) + " | false pos. |")
    print("|---|" + "---|" * len(KINDS) + "---|")
    for t in (nd.MAX_DISTANCE - 8, nd.MAX_DISTANCE - 4, nd.MAX_DISTANCE, nd.MAX_DISTANCE + 4):
        rec = " | ".join(f"{(test_pos[k] <= t).mean():.3f}" for k in KINDS)
        print(f"| {t} | {rec} | {int((test_neg <= t).sum())}/{len(test_neg)} |")
    # the detector as mine runs it (files, fixed thresholds), with and without the colour check
    (Path(tmp) / "excluded").mkdir()
    for q in excluded[half:]:
        (Path(tmp) / "excluded" / Path(q).name).symlink_to(q)
    pool = [q for k in KINDS for q in copies[k][half:]] + negatives[nhalf:]
    found = nd.find_near_duplicates(pool, [Path(tmp) / "excluded"], max_colour_difference=1e9)
    print(
        f"\nthe detector as mine runs it on the test half (max_distance {nd.MAX_DISTANCE}), "
        f"without / with the colour check (max_colour_difference {nd.MAX_COLOUR_DIFFERENCE:g}); "
        "colour differences of the copies caught by the hash: "
        + ", ".join(
            f"{k} max {max([d.colour_difference for d in found if d.path in copies[k]] or [0]):.1f}"
            for k in KINDS
        )
    )
    print("| colour check | " + " | ".join(KINDS) + " | false pos. |")
    print("|---|" + "---|" * len(KINDS) + "---|")
    for check, limit in (("no", 1e9), ("yes", nd.MAX_COLOUR_DIFFERENCE)):
        hit = {d.path for d in found if d.colour_difference <= limit}
        rec = " | ".join(
            f"{len(hit & set(copies[k][half:])) / (args.exclude - half):.3f}" for k in KINDS
        )
        print(f"| {check} | {rec} | {len(hit & set(negatives[nhalf:]))}/{len(negatives) - nhalf} |")
    real_pool = args.data / "pool"
    if real_pool.is_dir():
        from ssld_zoo.data.images import scan_unlabeled

        pool = scan_unlabeled(real_pool)
        found = nd.find_near_duplicates(pool, [args.data / "val"], max_colour_difference=1e9)
        kept = [d for d in found if d.colour_difference <= nd.MAX_COLOUR_DIFFERENCE]
        print(
            f"\nthe real pool {real_pool} ({len(pool)} images) against all of {args.data / 'val'}: "
            f"{len(found)} flagged by the hash, {len(kept)} after the colour check:"
        )
        for d in sorted(found, key=lambda d: d.distance):
            print(
                f"  {d.path}  {d.duplicate_of}  {d.distance} bits, colour {d.colour_difference:.1f}"
            )
    workdir.cleanup()
    coco = sorted(str(q) for q in (args.data.parent / "coco_mini" / "images" / "train").glob("*"))
    print_costs(negatives, excl_imgs)
    if coco:
        print_costs(coco, excl_imgs[:20])
    return 0


def print_costs(paths: list[str], excl_imgs: list) -> None:
    """The shipped method's costs in one thread, as CPU time (what a core of its own would
    take; the wall time on a shared machine is longer): reading and hashing a pool file (as
    mine reads it), hashing an excluded image's views, comparing hashes."""
    from PIL import Image

    from ssld_zoo.data import near_duplicates as nd
    from ssld_zoo.preprocess import decode_image

    t0 = time.process_time()
    pool = np.stack([nd.image_hash(decode_image(q, reduce_to=nd._DECODE_SIDE)) for q in paths])
    per_pool = (time.process_time() - t0) / len(paths)
    t0 = time.process_time()
    views = np.concatenate([nd.view_hashes(im) for im in excl_imgs])
    per_excl = (time.process_time() - t0) / len(excl_imgs)
    index = nd.ExcludeIndex([""], views, np.zeros(len(views)))
    t0 = time.process_time()
    index.nearest(pool)
    rate = len(pool) * len(views) / (time.process_time() - t0)
    print(
        f"\ncosts, CPU time of one thread: {1e3 * per_pool:.2f} ms to read and hash a pool "
        f"image ({len(paths)} photos of {Path(paths[0]).parent.parent.parent}, as big as "
        f"{max(Image.open(q).size[0] for q in paths)} px), {1e3 * per_excl:.1f} ms to hash "
        f"an excluded image's {2 * len(nd.VIEWS)} views, "
        f"{rate / 1e6:.0f}M 256-bit hash comparisons/s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
