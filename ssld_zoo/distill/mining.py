"""Mine an unlabeled pool with a teacher: keep the top-K most confident images per class.

As SSLD built "ImageNet_5M" (PaddleClas docs/zh_CN/training/advanced/ssld.md): score every
ImageNet-22k image with the teacher, keep the top-k per ImageNet-1k class. The output list
(``path<TAB>class<TAB>confidence``, best first within each class) is directly usable as an
unlabeled root of a recipe.

Scores are appended to ``<out>.scores.tsv`` as batches finish, so an interrupted run resumes
where it stopped; the final list is written atomically at the end.

With ``exclude``, pool images that near-duplicate an image under those folders (SSLD removed
the ImageNet-22k near-duplicates of the ImageNet-1k val set) are dropped before they are scored
or selected (see :mod:`ssld_zoo.data.near_duplicates`), and listed in ``<out>.duplicates.tsv``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ssld_zoo.data.images import read_image, scan_unlabeled
from ssld_zoo.weights.fileops import atomic_write

__all__ = ["mine", "MiningResult", "scores_path", "duplicates_path", "read_scores"]


@dataclass
class MiningResult:
    out: Path
    scored: int  # images scored in this call
    reused: int  # scores found from an earlier, interrupted call
    unreadable: int
    selected: int
    per_class: dict[int, int]
    duplicates: int = 0  # pool images dropped as near-duplicates of an excluded image


def duplicates_path(out: str | os.PathLike) -> Path:
    """Where ``mine(out=..., exclude=...)`` lists the pool images it dropped."""
    return Path(str(out) + ".duplicates.tsv")


def scores_path(out: str | os.PathLike) -> Path:
    """Where the running scores of ``mine(out=...)`` are kept (for resuming)."""
    return Path(str(out) + ".scores.tsv")


def score_line(path: str, cls: int, conf: float) -> str:
    """One line of a scores file: ``path<TAB>class<TAB>confidence`` (class -1: unreadable)."""
    return f"{path}\t{cls}\t{conf:.8f}\n"


def read_scores(path: Path) -> dict[str, tuple[int, float]]:
    """``{image path: (class, confidence)}`` from a scores file (class -1: unreadable)."""
    scores: dict[str, tuple[int, float]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            parts = line.split("\t")
            if len(parts) == 3:  # a line cut by a kill has fewer columns: re-score that image
                scores[parts[0]] = (int(parts[1]), float(parts[2]))
    return scores


class _Pool(Dataset):
    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = read_image(self.paths[i])
        if img is None:
            return None, i
        return self.transform(img), i


def _collate(batch):
    good = [(x, i) for x, i in batch if x is not None]
    bad = [i for x, i in batch if x is None]
    x = torch.stack([g[0] for g in good]) if good else None
    return x, [g[1] for g in good], bad


def mine(
    teacher: str,
    pool: str | os.PathLike | Sequence[str],
    per_class: int,
    out: str | os.PathLike,
    *,
    min_conf: float = 0.0,
    weights: str | None = None,
    batch_size: int = 64,
    num_workers: int = 2,
    device: str | None = None,
    transform: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    model: torch.nn.Module | None = None,
    cache: str | os.PathLike | None = None,
    exclude: Sequence[str | os.PathLike] = (),
    max_distance: int | None = None,
) -> MiningResult:
    """Score ``pool`` (folders or list files) with ``teacher`` and write the top ``per_class``
    images of each predicted class with confidence >= ``min_conf`` to ``out``.

    Args:
        teacher: zoo name (its published weights), or architecture name with ``weights``.
        transform: ``dict(input_size=, resize=, interpolation=, mean=, std=)`` overriding the
            teacher card's eval transform.
        progress: called as ``progress(done, total)`` after each batch.
        model: an already built teacher (tests, or callers that have one).
        cache: a teacher cache (``ssld-zoo label``) built over the pool with this teacher: its
            scores (the teacher's mean prediction over the cached views) are used and the
            teacher is not run. Every pool image must be in it.
        exclude: folders (e.g. the val set): pool images that near-duplicate any image under
            them are dropped (neither scored nor selected) and written to
            ``<out>.duplicates.tsv`` (pool path, the excluded image, hash distance).
        max_distance: the near-duplicate threshold in hash bits (default
            :data:`ssld_zoo.data.near_duplicates.MAX_DISTANCE`).
    """
    from ssld_zoo.api import load
    from ssld_zoo.preprocess import eval_transform_of

    if per_class <= 0:
        raise ValueError(f"per_class must be positive, got {per_class}")
    if not 0.0 <= min_conf <= 1.0:
        raise ValueError(f"min_conf must be in [0, 1], got {min_conf}")
    roots = [pool] if isinstance(pool, (str, os.PathLike)) else list(pool)
    # each image once, even when two pool roots overlap (a folder and a list of its files)
    paths = list(dict.fromkeys(p for r in roots for p in scan_unlabeled(r)))
    out = Path(out)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dropped = 0
    if exclude:
        dropped_paths = _drop_near_duplicates(paths, exclude, max_distance, num_workers, dev, out)
        dropped = len(dropped_paths)
        paths = [p for p in paths if p not in dropped_paths]
    spath = scores_path(out)
    scores = read_scores(spath)
    if cache is not None:
        scores.update(_cache_scores(cache, teacher, weights, paths))
    reused = sum(1 for p in paths if p in scores)
    todo = [p for p in paths if p not in scores]
    if not todo:
        return _select(paths, scores, teacher, per_class, min_conf, out, 0, reused, 0, dropped)

    if model is None:
        model = load(teacher, weights=weights) if weights else load(teacher)
    model = model.to(dev).eval()
    # a weights file without a card must not borrow the registered teacher's transform
    tf = eval_transform_of(model, teacher if weights is None else None).replace(**(transform or {}))
    mean = torch.tensor(tf.mean, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(tf.std, device=dev).view(1, -1, 1, 1)
    loader = DataLoader(
        _Pool(todo, tf.resize_crop()),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    spath.parent.mkdir(parents=True, exist_ok=True)
    done, unreadable = reused, 0
    with open(spath, "a", encoding="utf-8", errors="surrogateescape") as f, torch.no_grad():
        for x, idx, bad in loader:
            lines = [score_line(todo[i], -1, 0.0) for i in bad]
            unreadable += len(bad)
            if x is not None:
                x = (x.to(dev).float() / 255.0 - mean) / std
                conf, cls = model(x).float().softmax(-1).max(-1)
                for i, c, p in zip(idx, cls.tolist(), conf.tolist()):
                    line = score_line(todo[i], c, p)
                    # Rank by the value as written, so a resumed run selects the same images.
                    scores[todo[i]] = (c, float(line.rsplit("\t", 1)[1]))
                    lines.append(line)
            f.writelines(lines)
            f.flush()  # a kill loses at most the batch in flight
            done += len(idx) + len(bad)
            if progress:
                progress(done, len(paths))

    return _select(
        paths, scores, teacher, per_class, min_conf, out, len(todo), reused, unreadable, dropped
    )


def _drop_near_duplicates(
    paths: Sequence[str],
    exclude: Sequence[str | os.PathLike],
    max_distance: int | None,
    num_workers: int,
    device: torch.device,
    out: Path,
) -> set[str]:
    """The pool images that near-duplicate an excluded image, also written (atomically) to
    ``<out>.duplicates.tsv``: pool path, excluded image, distance."""
    from ssld_zoo.data.near_duplicates import MAX_DISTANCE, find_near_duplicates

    limit = MAX_DISTANCE if max_distance is None else int(max_distance)
    found = find_near_duplicates(paths, exclude, limit, num_workers=num_workers, device=device)
    lines = [
        "# ssld-zoo mine --exclude: pool image<TAB>excluded image it near-duplicates<TAB>"
        f"hash distance (bits of 256, at most {limit})<TAB>colour difference (of 255)\n"
    ]
    lines += [
        f"{d.path}\t{d.duplicate_of}\t{d.distance}\t{d.colour_difference:.2f}\n" for d in found
    ]
    dest = duplicates_path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        dest,
        lambda tmp: Path(tmp).write_text(
            "".join(lines), encoding="utf-8", errors="surrogateescape"
        ),
    )
    return {d.path for d in found}


def _cache_scores(
    cache: str | os.PathLike, teacher: str, weights: str | None, paths: Sequence[str]
) -> dict[str, tuple[int, float]]:
    """The pool's scores from a teacher cache, checked to come from ``teacher`` with these
    ``weights`` (their sha256: the same file elsewhere is the same teacher)."""
    from ssld_zoo.distill.cache import CacheMismatchError, TeacherCache
    from ssld_zoo.distill.cache.identity import teacher_identity

    tc = TeacherCache(cache)
    built = tc.spec.teacher["name"]
    if built != teacher:
        raise CacheMismatchError(f"{tc.root}: built with teacher {built!r}, not {teacher!r}")
    now = teacher_identity({"name": teacher, "weights": weights, "pretrained": True})
    then = tc.spec.teacher.get("weights_sha256")
    if now["weights_sha256"] != then:
        raise CacheMismatchError(
            f"{tc.root}: built with other weights of {teacher} "
            f"({tc.spec.teacher.get('weights') or 'its published weights'}, sha256 "
            f"{str(then)[:16]}...) than {weights or 'its published weights'} (sha256 "
            f"{now['weights_sha256'][:16]}...): pass the weights the cache was built with "
            f"(--weights)"
        )
    scores = tc.scores()
    missing = [p for p in paths if p not in scores]
    if missing:
        raise CacheMismatchError(
            f"{tc.root}: {len(missing)} of the {len(paths)} pool images "
            f"are not in the cache (first: {missing[0]})"
        )
    return {p: scores[p] for p in paths}


def _select(
    paths: Sequence[str],
    scores: dict[str, tuple[int, float]],
    teacher: str,
    per_class: int,
    min_conf: float,
    out: Path,
    scored: int,
    reused: int,
    unreadable: int,
    dropped: int,
) -> MiningResult:
    """Write the top ``per_class`` images of each class to ``out``."""
    by_class: dict[int, list[tuple[float, str]]] = {}
    for p in paths:
        c, conf = scores.get(p, (-1, 0.0))
        if c >= 0 and conf >= min_conf:
            by_class.setdefault(c, []).append((conf, p))
    lines = [
        "# ssld-zoo mine: path<TAB>class<TAB>teacher confidence "
        f"(teacher {teacher}, top {per_class} per class, min_conf {min_conf})\n"
    ]
    per: dict[int, int] = {}
    for c in sorted(by_class):
        best = sorted(by_class[c], key=lambda t: (-t[0], t[1]))[:per_class]
        per[c] = len(best)
        lines += [f"{p}\t{c}\t{conf:.8f}\n" for conf, p in best]
    atomic_write(
        out,
        lambda tmp: Path(tmp).write_text(
            "".join(lines), encoding="utf-8", errors="surrogateescape"
        ),
    )
    return MiningResult(out, scored, reused, unreadable, sum(per.values()), per, dropped)
