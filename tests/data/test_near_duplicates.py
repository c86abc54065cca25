"""Near-duplicates by perceptual hash: resized, re-encoded, mirrored and cropped copies of real
photos are caught; other photos of the same class are not (ssld_zoo.data.near_duplicates)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from ssld_zoo.data.near_duplicates import (
    MAX_DISTANCE,
    VIEWS,
    find_near_duplicates,
    image_hash,
    view_hashes,
)

CLASSES = ("n01440764", "n03028079")  # tench, church


def _jpeg(img: Image.Image, path: Path, quality: int = 90) -> str:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    path.write_bytes(buf.getvalue())
    return str(path)


def _crop(img: Image.Image, scale: float, fx: float, fy: float) -> Image.Image:
    w, h = img.width * scale, img.height * scale
    left, top = (img.width - w) * fx, (img.height - h) * fy
    return img.crop((left, top, left + w, top + h))


# Each kind of copy, with crops between the crop views (0.88 and 0.92 are no view's scale,
# the places no view's place); the benchmark measures how often each kind is caught
COPIES = {
    "resized": lambda im, d: _jpeg(im.resize((77, 77), Image.Resampling.BICUBIC), d),
    "upsized": lambda im, d: _jpeg(im.resize((230, 200), Image.Resampling.BICUBIC), d),
    "re-encoded": lambda im, d: _jpeg(im, d, quality=25),
    "png": lambda im, d: (im.save(d.with_suffix(".png")), str(d.with_suffix(".png")))[1],
    "mirrored": lambda im, d: _jpeg(ImageOps.mirror(im), d),
    "cropped": lambda im, d: _jpeg(_crop(im, 0.88, 0.6, 0.4), d),
    "cropped-mirrored-small": lambda im, d: _jpeg(
        ImageOps.mirror(_crop(im, 0.92, 0.4, 0.3)).resize((100, 100)), d, quality=50
    ),
}


@pytest.fixture(scope="module")
def photos(test_data: Path, tmp_path_factory) -> dict:
    """``exclude/``: 3 val photos of each of two classes (links); ``pool/``: each kind of copy
    of each, 4 train photos of the same classes and an unreadable file."""
    src = test_data / "imagenette"
    if not (src / "val").is_dir():
        from tests.conftest import unavailable

        unavailable(f"{src}/val not found: set SSLD_ZOO_TEST_DATA")
    root = tmp_path_factory.mktemp("near_dup")
    (root / "exclude" / "sub").mkdir(parents=True)
    (root / "pool").mkdir()
    copies: dict[str, dict[str, str]] = {k: {} for k in COPIES}
    negatives = []
    for c in CLASSES:
        for f in sorted((src / "val" / c).iterdir())[:3]:
            link = root / "exclude" / "sub" / f"{c}_{f.name}"
            link.symlink_to(f)
            img = Image.open(f).convert("RGB")
            for kind, make in COPIES.items():
                copies[kind][make(img, root / "pool" / f"{kind}_{f.stem}.jpg")] = str(link)
        for f in sorted((src / "train" / c).iterdir())[:2]:
            (root / "pool" / f.name).symlink_to(f)
            negatives.append(str(root / "pool" / f.name))
    (root / "pool" / "zz_broken.jpg").write_bytes(b"not a jpeg")
    return {"root": root, "copies": copies, "negatives": negatives}


def test_views_hold_the_image_and_its_mirror():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).resize((140, 100))
    views = view_hashes(img)
    assert views.shape == (2 * len(VIEWS), 32) and views.dtype == np.uint8
    assert np.array_equal(views[0], image_hash(img))
    assert np.array_equal(views[len(VIEWS)], image_hash(ImageOps.mirror(img)))
    # a different image is far away: about half of the 256 bits differ
    other = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).resize((140, 100))
    assert np.unpackbits(image_hash(img) ^ image_hash(other)).sum() > MAX_DISTANCE


def test_each_kind_of_copy_is_caught_and_other_photos_are_not(photos):
    found = find_near_duplicates(
        sorted(str(p) for p in (photos["root"] / "pool").iterdir()),
        [photos["root"] / "exclude"],
        num_workers=0,
    )
    by_path = {d.path: d for d in found}
    for kind, copies in photos["copies"].items():
        for copy, source in copies.items():
            assert copy in by_path, f"{kind} copy {copy} of {source} not caught"
            assert by_path[copy].duplicate_of == source
            assert 0 <= by_path[copy].distance <= MAX_DISTANCE
    caught = set(by_path) & set(photos["negatives"])
    assert not caught, f"other photos of the same classes taken for copies: {caught}"
    assert len(found) == sum(len(c) for c in photos["copies"].values())


def test_max_distance_is_the_largest_distance_kept(photos):
    pool = [*photos["copies"]["re-encoded"], *photos["copies"]["cropped"]]
    every = find_near_duplicates(pool, [photos["root"] / "exclude"], 256, num_workers=0)
    assert len(every) == len(pool)  # 256 bits apart at most: everything matches something
    cut = sorted(d.distance for d in every)[len(every) // 2]
    kept = find_near_duplicates(pool, [photos["root"] / "exclude"], cut, num_workers=0)
    assert kept == [d for d in every if d.distance <= cut] and 0 < len(kept) < len(every)


def test_missing_or_empty_exclude_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"exclude folder {tmp_path / 'val'} does not"):
        find_near_duplicates([], [tmp_path / "val"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"exclude folder {tmp_path / 'empty'} holds no"):
        find_near_duplicates([], [tmp_path / "empty"])


def test_colour_confirms_a_hash_match(test_data, tmp_path):
    """Two different parachutes on a plain sky hash 40 bits apart (the nearest such pair of
    Imagenette's pool and val); their colours tell them apart, a copy's do not."""
    from ssld_zoo.data.near_duplicates import MAX_COLOUR_DIFFERENCE, colour_difference

    src = test_data / "imagenette"
    pool, val = src / "pool" / "p01987.jpg", src / "val" / "n03888257" / "n03888257_7011.JPEG"
    if not pool.is_file() or not val.is_file():
        from tests.conftest import unavailable

        unavailable(f"{pool} or {val} not found: set SSLD_ZOO_TEST_DATA")
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / val.name).symlink_to(val)
    loose = find_near_duplicates([str(pool)], [tmp_path / "val"], 67, 0, max_colour_difference=1e9)
    assert [d.distance for d in loose] == [40]  # the hash alone takes it for a copy
    assert loose[0].colour_difference > MAX_COLOUR_DIFFERENCE
    assert find_near_duplicates([str(pool)], [tmp_path / "val"], 67, 0) == []
    img = Image.open(val).convert("RGB")
    assert colour_difference(ImageOps.mirror(img), img) == 0.0
    assert colour_difference(_crop(img, 0.9, 0.5, 0.5), img) == 0.0
