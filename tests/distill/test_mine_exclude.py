"""``mine(exclude=...)`` / ``ssld-zoo mine --exclude``: near-duplicates of the excluded images are
dropped before scoring, listed in ``<out>.duplicates.tsv``, and the drop composes with resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps

from ssld_zoo.data.near_duplicates import MAX_COLOUR_DIFFERENCE, MAX_DISTANCE
from tests.distill.conftest import TINY_ARCH


@pytest.fixture(scope="module")
def pool_and_val(test_data: Path, tmp_path_factory) -> dict:
    """``val/<class>/``: 2 Imagenette val photos of each of 2 classes; ``pool/``: a mirrored
    and a cropped copy of each, 6 train photos of the same classes and an unreadable file."""
    src = test_data / "imagenette"
    if not (src / "val").is_dir():
        from tests.conftest import unavailable

        unavailable(f"{src}/val not found: set SSLD_ZOO_TEST_DATA")
    root = tmp_path_factory.mktemp("mine_exclude")
    (root / "pool").mkdir()
    copies = {}
    for c in ("n02102040", "n03394916"):  # English springer, French horn
        (root / "val" / c).mkdir(parents=True)
        for f in sorted((src / "val" / c).iterdir())[:2]:
            (root / "val" / c / f.name).symlink_to(f)
            img = Image.open(f).convert("RGB")
            ImageOps.mirror(img).save(root / "pool" / f"flip_{f.stem}.jpg", quality=85)
            img.crop((10, 5, 135, 130)).save(root / "pool" / f"crop_{f.stem}.png")
            copies[str(root / "pool" / f"flip_{f.stem}.jpg")] = str(root / "val" / c / f.name)
            copies[str(root / "pool" / f"crop_{f.stem}.png")] = str(root / "val" / c / f.name)
        for f in sorted((src / "train" / c).iterdir())[:3]:
            (root / "pool" / f.name).symlink_to(f)
    (root / "pool" / "zz_broken.jpg").write_bytes(b"not a jpeg")
    return {"root": root, "copies": copies}


def _mine(root: Path, out: Path, **kw):
    from ssld_zoo.distill.mining import mine

    torch.manual_seed(0)
    kw.setdefault("model", __import__("ssld_zoo").load(TINY_ARCH, pretrained=False, num_classes=3))
    return mine(
        TINY_ARCH,
        root / "pool",
        20,
        out,
        transform=dict(input_size=32, resize=32),
        batch_size=4,
        num_workers=0,
        device="cpu",
        **kw,
    )


def _rows(path: Path) -> list[list[str]]:
    return [ln.split("\t") for ln in path.read_text().splitlines() if not ln.startswith("#")]


def test_mine_exclude_drops_and_lists_near_duplicates(pool_and_val, tmp_path):
    from ssld_zoo.distill.mining import duplicates_path, read_scores, scores_path

    root, copies = pool_and_val["root"], pool_and_val["copies"]
    out = tmp_path / "mined.txt"
    res = _mine(root, out, exclude=[root / "val"])
    assert res.duplicates == len(copies) == 8
    listed = {r[0]: (r[1], int(r[2]), float(r[3])) for r in _rows(duplicates_path(out))}
    assert {p: v[0] for p, v in listed.items()} == copies
    assert all(0 <= d <= MAX_DISTANCE for _, d, _ in listed.values())
    assert all(0 <= c <= MAX_COLOUR_DIFFERENCE for _, _, c in listed.values())
    # dropped images are neither scored nor selected; the others are
    mined = {r[0] for r in _rows(out)}
    assert not mined & set(copies) and len(mined) == res.selected == 6
    assert set(read_scores(scores_path(out))) == {
        str(p) for p in (root / "pool").iterdir() if str(p) not in copies
    }
    assert res.scored == 7 and res.unreadable == 1

    # without --exclude every readable image can be selected: the same pool, a fresh run
    plain = _mine(root, tmp_path / "plain.txt")
    assert plain.duplicates == 0 and plain.selected == 14
    assert not duplicates_path(tmp_path / "plain.txt").exists()

    # resume over scores of a run without --exclude: nothing re-scored, the copies still dropped
    resumed_out = tmp_path / "plain.txt"
    resumed = _mine(root, resumed_out, exclude=[root / "val"], model=None)
    assert resumed.scored == 0 and resumed.reused == 7 and resumed.duplicates == 8
    assert {r[0] for r in _rows(resumed_out)} == mined


def test_cli_mine_exclude_reports_and_names_a_missing_folder(pool_and_val, tmp_path, capsys):
    from ssld_zoo.cli.main import main

    root = pool_and_val["root"]
    weights = tmp_path / "w.pth"
    torch.manual_seed(0)
    torch.save(
        __import__("ssld_zoo").load(TINY_ARCH, pretrained=False).state_dict(),
        weights,
    )
    args = ["mine", "--teacher", TINY_ARCH, "--weights", str(weights), "--pool", str(root / "pool")]
    args += ["--per-class", "2", "--num-workers", "0", "--device", "cpu"]
    out = tmp_path / "m.txt"
    assert main([*args, "--out", str(out), "--exclude", str(root / "val")]) == 0
    text = capsys.readouterr().out
    assert "dropped 8 pool images as near-duplicates" in " ".join(text.split())
    assert str(out) + ".duplicates.tsv" in "".join(text.split())  # rich wraps long paths
    assert len(_rows(Path(str(out) + ".duplicates.tsv"))) == 8

    missing = tmp_path / "no_val"
    assert main([*args, "--out", str(tmp_path / "x.txt"), "--exclude", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"exclude folder {missing} does not exist" in err
    assert not (tmp_path / "x.txt").exists()
