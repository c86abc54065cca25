"""Build a teacher cache: run a recipe's teacher once over every image it trains on.

``build_teacher_cache(recipe, out, views=N, topk=K)`` is what ``ssld-zoo label`` calls. Each
image is decoded once and cut into N views by the recipe's own train transform, view ``v`` of
image ``i`` drawn under the seed ``sample_seed(seed, v, i)``: the crop an online run of the same
recipe sees at epoch ``v``. The teacher (the fast online teacher: BatchNorm folded, inference
mode) scores the views in batches; each shard of ``shard_size`` images is written to a temporary
file and renamed, then marked done, so a killed build resumes at the first unfinished shard.
Under ``torchrun`` rank r builds shards r, r + W, ... and rank 0 finishes the manifest.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ssld_zoo.data.images import ImageDataset, sample_seed, seeded
from ssld_zoo.distill.cache.format import (
    FORMAT_VERSION,
    IMAGES,
    KINDS,
    MANIFEST,
    SCORES,
    CacheMismatchError,
    CacheSpec,
    images_digest,
    record_dtype,
    shard_name,
    teacher_diff,
)
from ssld_zoo.distill.cache.identity import read_identified, teacher_identity
from ssld_zoo.weights.fileops import atomic_write, sha256_of

__all__ = ["build_teacher_cache", "BuildResult", "teacher_fingerprint", "cache_spec"]


@dataclass
class BuildResult:
    root: Path
    spec: CacheSpec
    built_shards: int  # shards written by this call (this rank)
    reused_shards: int  # shards found done from an earlier, interrupted call
    images: int  # images scored by this call (this rank)
    seconds: float
    bytes: int  # size of the whole cache on disk (rank 0 after the build)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def _teacher_spec(recipe: dict) -> dict:
    from ssld_zoo.engine.models import model_spec

    t = recipe["model"].get("teacher")
    if t is None:
        raise ValueError(
            f"{getattr(recipe, 'filename', None) or 'recipe'}: model.teacher=None: "
            f"a teacher cache needs a teacher"
        )
    return model_spec(t)


def _seed(recipe: dict) -> int:
    return int((recipe.get("randomness") or {}).get("seed") or 0)


def teacher_fingerprint(recipe: dict) -> dict:
    """What a cache records of the teacher a recipe names (what it is, its weights and their
    sha256, its class map), without building it when its weights are a file or a published
    card (:func:`~ssld_zoo.distill.cache.identity.teacher_identity`); any other teacher (timm,
    torchvision, a builder, random weights) is built and its state dict hashed."""
    from ssld_zoo.distill.class_map import read_class_map
    from ssld_zoo.distill.distiller import split_model_spec

    t = _teacher_spec(recipe)
    ident = teacher_identity(t, _seed(recipe))
    _, run = split_model_spec(t)
    if run.get("class_map") is not None:  # the cache holds the mapped classes only
        ident["class_map"] = read_class_map(run["class_map"])
    return ident


def build_teacher(recipe: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(model, input)``: the teacher a recipe names, built (CPU, eval mode; a randomly
    initialised one is the same on every call, the one :func:`teacher_fingerprint` hashed),
    and how it sees images (its :class:`~ssld_zoo.engine.models.ModelInput`)."""
    from ssld_zoo.distill.distiller import build_teacher_model, model_input, split_model_spec

    t = _teacher_spec(recipe)
    _, run = split_model_spec(t)
    m = recipe["model"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(recipe))
        model = build_teacher_model(t)
    return model, model_input(model, run, {k: m.get(k) for k in ("mean", "std", "input_size")})


def teacher_normalisation(recipe: dict) -> tuple[tuple, tuple]:
    """``(mean, std)`` the recipe's teacher sees images with: set in its spec or the
    Distiller, else its registered weights' card; only a teacher with neither is built."""
    from ssld_zoo.distill.distiller import split_model_spec
    from ssld_zoo.registry import get_weights

    t = _teacher_spec(recipe)
    model_cfg, run = split_model_spec(t)
    m = recipe["model"]
    pick = {k: run.get(k, m.get(k)) for k in ("mean", "std")}
    if pick["mean"] is None or pick["std"] is None:
        card = None
        if (
            model_cfg["type"] == "ZooModel"
            and model_cfg.get("pretrained", True)
            and not (model_cfg.get("weights") and os.path.isfile(str(model_cfg["weights"])))
        ):
            try:
                card = get_weights(model_cfg.get("weights") or model_cfg["name"])
            except (KeyError, ValueError):
                card = None
        if card is not None:
            own = dict(mean=card.transform.mean, std=card.transform.std)
        else:
            own = build_teacher(recipe)[1].settings()
        pick = {k: v if v is not None else own[k] for k, v in pick.items()}
    return tuple(pick["mean"]), tuple(pick["std"])


def cache_spec(
    recipe: dict,
    samples,
    teacher_ident: dict,
    transform_settings: dict,
    *,
    views: int,
    topk: int,
    kind: str,
    shard_size: int,
    seed: int,
    num_classes: int,
    mean,
    std,
) -> CacheSpec:
    """The :class:`CacheSpec` of a cache of ``recipe`` over ``samples``."""
    return CacheSpec(
        teacher=teacher_ident,
        transform=dict(transform_settings),
        seed=int(seed),
        views=int(views),
        topk=int(topk),
        kind=kind,
        num_classes=int(num_classes),
        num_images=len(samples),
        images_sha256=images_digest(samples),
        shard_size=int(shard_size),
        mean=tuple(mean),
        std=tuple(std),
    )


class _Views(Dataset):
    """Image ``i`` of a shard -> its N views (decoded once), boxes, flips and seeds."""

    def __init__(self, samples, rows, transform, seed: int, views: int):
        self.samples, self.rows, self.transform = samples, rows, transform
        self.seed, self.views = seed, views

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        row = self.rows[k]
        # a tar member's offset comes with it: no shard index to load in each worker
        img, identity = read_identified(self.samples[row][0], self.samples.location(row))
        if img is None:
            return row, None
        out, boxes, flips, seeds = [], [], [], []
        for v in range(self.views):
            s = sample_seed(self.seed, v, row)
            with seeded(s):
                x, box, flip = self.transform.view(img)
            out.append(x)
            boxes.append(box)
            flips.append(flip)
            seeds.append(s)
        return row, (torch.stack(out), boxes, flips, seeds, identity)


def _first(batch):
    return batch


def _spec_diff(old: dict, new: dict) -> list[str]:
    out = teacher_diff(old.get("teacher", {}), new["teacher"])
    return out + [
        f"{k}: {old.get(k)!r} in the cache, {v!r} now"
        for k, v in new.items()
        if k != "teacher" and old.get(k) != v
    ]


def _targets(logits: torch.Tensor, topk: int, kind: str, gen: torch.Generator):
    """Compact teacher output of each row: ``(ids, log-probabilities, dense probabilities)``,
    the log-probabilities those of ``ids`` and then the log of the other classes' mass."""
    logp = logits.float().log_softmax(-1)
    p = logp.exp()
    if kind == "topk":
        kept, ids = logp.topk(topk, dim=-1)
        # summed from the dropped classes themselves: 1 - sum(kept) cancels to 0 in float32
        rest = logp.scatter(1, ids, float("-inf")).logsumexp(-1, keepdim=True)
    else:  # Sparse Logit Sampling: topk draws with replacement, kept as distinct ids + frequency
        draws = torch.multinomial(p.cpu(), topk, replacement=True, generator=gen).to(p.device)
        counts = torch.zeros_like(p).scatter_add_(1, draws, torch.ones_like(draws, dtype=p.dtype))
        # at most min(K, C) distinct classes; the other slots hold frequency 0 (log: -inf)
        freq, ids = counts.topk(min(topk, p.shape[-1]), dim=-1)
        pad = topk - ids.shape[-1]
        if pad:
            ids = F.pad(ids, (0, pad))
            freq = F.pad(freq, (0, pad))
        kept = (freq / topk).log()
        rest = torch.full_like(kept[:, :1], float("-inf"))  # the estimate sums to 1 by itself
    return ids, torch.cat([kept, rest], 1), p


def build_teacher_cache(
    recipe: dict,
    out: str | os.PathLike,
    *,
    views: int,
    topk: int,
    kind: str = "topk",
    batch_size: int | None = None,
    shard_size: int = 4096,
    device: str | None = None,
    num_workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildResult:
    """Run the recipe's teacher over its images, ``views`` views each, into the cache ``out``.

    Args:
        recipe: a checked recipe (:func:`~ssld_zoo.distill.recipes.load_recipe`).
        views: augmented views per image (N); topk: classes kept per view (K).
        kind: ``"topk"`` or ``"sampled"`` (see :mod:`~ssld_zoo.distill.cache.format`).
        batch_size: views per teacher forward (default: the recipe's per-process batch).
        shard_size: images per shard file (the unit of resuming and of parallel work).
        progress: ``progress(done, total)`` after each batch of images (this rank's share).

    A cache folder holding a build for other settings is refused, naming what differs.
    """
    from mmengine.registry import TRANSFORMS

    from ssld_zoo.distill.recipes import train_images_cfg
    from ssld_zoo.distill.teacher import OnlineTeacher

    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {KINDS}")
    if views < 1 or topk < 1 or shard_size < 1:
        raise ValueError(f"views={views}, topk={topk}, shard_size={shard_size}: each must be >= 1")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    dist = None
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")  # only barriers: gloo works on CPU and GPU jobs
    root = Path(out)
    d = dict(train_images_cfg(recipe))
    transform = TRANSFORMS.build(d["transform"])
    images = ImageDataset(
        d.get("labeled_roots", ()),
        d.get("unlabeled_roots", ()),
        None,
        seed=d.get("seed", 0),
        classes=d.get("classes"),
        allow_empty_classes=d.get("allow_empty_classes", False),
    )
    ident = teacher_fingerprint(recipe)
    model, inp = build_teacher(recipe)
    from ssld_zoo.engine.models import num_classes_of

    teacher_classes = num_classes_of(model, inp.input_size or 224)
    mapped = None  # the teacher index of each student class, checked against the teacher
    if "class_map" in ident:
        from ssld_zoo.distill.class_map import resolve_class_map

        mapped = resolve_class_map(ident["class_map"], teacher_classes)
    num_classes = len(mapped) if mapped is not None else teacher_classes
    if kind == "topk" and topk > num_classes:
        raise ValueError(f"topk={topk} exceeds the teacher's {num_classes} classes")
    settings = inp.settings()
    spec = cache_spec(
        recipe,
        images.samples,
        ident,
        transform.settings,
        views=views,
        topk=topk,
        kind=kind,
        shard_size=shard_size,
        seed=images.seed,
        num_classes=num_classes,
        mean=settings["mean"],
        std=settings["std"],
    )

    manifest_path = root / MANIFEST
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text()).get("spec", {})
        diff = _spec_diff(old, spec.to_json())
        if diff:
            raise CacheMismatchError(
                f"{root}: holds a teacher cache built with other settings ("
                + "; ".join(diff)
                + "): use another folder, or delete this one"
            )
    if rank == 0:
        # (re)written on every call: a repair (`--verify --repair`) may have found it damaged
        text = "".join(f"{p}\t{label}\n" for p, label in images.samples)
        atomic_write(
            root / IMAGES,
            lambda tmp: Path(tmp).write_text(text, encoding="utf-8", errors="surrogateescape"),
        )
        if not manifest_path.is_file():
            _write_manifest(root, spec, complete=False)
    if dist is not None:
        dist.barrier()

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t = _teacher_spec(recipe)
    teacher = OnlineTeacher(
        model.to(dev),
        precision=t.get("precision", "auto"),
        fold_bn=t.get("fold_bn", True),
        channels_last=t.get("channels_last", True),
        bn_mode=t.get("bn_mode", "eval"),
        probe_size=inp.input_size or 224,
    )
    inp = inp.to(dev)
    class_map = None if mapped is None else torch.tensor(mapped, dtype=torch.long, device=dev)
    loader_cfg = recipe["train_dataloader"]
    per_forward = int(batch_size or max(1, loader_cfg["batch_size"] // world))
    workers = loader_cfg.get("num_workers", 0) if num_workers is None else num_workers
    dtype = record_dtype(views, topk, spec.num_classes)
    mine = [s for s in range(spec.num_shards) if s % world == rank]
    todo = [s for s in mine if not _shard_done(root, s, spec)]
    total = sum(spec.shard_rows(s)[1] for s in todo)
    done = 0
    t0 = time.perf_counter()
    paths = [p for p, _ in images.samples]
    for s in todo:
        start, count = spec.shard_rows(s)
        rec = np.zeros(count, dtype=dtype)
        loader = DataLoader(
            _Views(images.samples, range(start, start + count), transform, spec.seed, views),
            batch_size=max(1, per_forward // views),
            num_workers=workers,
            collate_fn=_first,
        )
        gen = torch.Generator().manual_seed(sample_seed(spec.seed, s, 0, stream=3))
        for batch in loader:
            good = [(row, item) for row, item in batch if item is not None]
            if good:
                x = torch.cat([item[0] for _, item in good]).to(dev, non_blocking=True)
                x = inp(x.float().div_(255))
                logits = torch.cat([teacher(chunk) for chunk in x.split(per_forward)])
                if class_map is not None:
                    logits = logits.index_select(1, class_map)
                ids, logp, p = _targets(logits, topk, kind, gen)
                ids = ids.view(len(good), views, topk).cpu().numpy()
                logp = logp.view(len(good), views, topk + 1).cpu().numpy()
                conf, cls = p.view(len(good), views, -1).mean(1).max(-1)
                at = np.array([row - start for row, _ in good])
                rec["ok"][at] = 1
                rec["seed"][at] = np.array([item[3] for _, item in good], dtype=np.uint64)
                rec["box"][at] = np.array([item[1] for _, item in good], dtype=np.float32)
                rec["flip"][at] = np.array([item[2] for _, item in good], dtype=np.uint8)
                rec["ids"][at] = ids
                rec["logp"][at] = logp
                rec["pred"][at] = cls.cpu().numpy()
                rec["conf"][at] = conf.float().cpu().numpy()
                rec["file_bytes"][at] = [item[4][0] for _, item in good]
                rec["fingerprint"][at] = np.array([item[4][1] for _, item in good], dtype=np.uint64)
            done += len(batch)
            if progress:
                progress(done, total)
        _write_shard(root, s, rec)
    seconds = time.perf_counter() - t0
    if dist is not None:
        dist.barrier()
    size = 0
    if rank == 0:
        size = _finish(root, spec, paths)
    return BuildResult(root, spec, len(todo), len(mine) - len(todo), total, seconds, size)


def _write_manifest(root: Path, spec: CacheSpec, complete: bool, **extra) -> None:
    import ssld_zoo

    m = {
        "format_version": FORMAT_VERSION,
        "complete": complete,
        "spec": spec.to_json(),
        "ssld_zoo_version": getattr(ssld_zoo, "__version__", None),
        "torch_version": torch.__version__,
        **extra,
    }
    text = json.dumps(m, indent=2) + "\n"
    atomic_write(root / MANIFEST, lambda tmp: Path(tmp).write_text(text))


def _marker(root: Path, s: int) -> Path:
    return root / (shard_name(s)[:-4] + ".json")


def _shard_done(root: Path, s: int, spec: CacheSpec) -> bool:
    f, marker = root / shard_name(s), _marker(root, s)
    if not (f.is_file() and marker.is_file()):
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("bytes") == f.stat().st_size and info.get("rows") == spec.shard_rows(s)[1]


def _write_shard(root: Path, s: int, rec: np.ndarray) -> None:
    f = root / shard_name(s)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to a name
            np.save(fh, rec, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(f, write)
    info = {"rows": len(rec), "bytes": f.stat().st_size, "sha256": sha256_of(f)}
    atomic_write(_marker(root, s), lambda tmp: Path(tmp).write_text(json.dumps(info) + "\n"))


def _finish(root: Path, spec: CacheSpec, paths: list[str]) -> int:
    """Check every shard, write the mining scores and mark the manifest complete."""
    from ssld_zoo.distill.mining import score_line

    shards, lines = [], []
    for s in range(spec.num_shards):
        if not _shard_done(root, s, spec):
            raise RuntimeError(f"{root / shard_name(s)}: shard {s} was not finished by any rank")
        shards.append({"file": shard_name(s), **json.loads(_marker(root, s).read_text())})
        rec = np.load(root / shard_name(s), mmap_mode="r")
        start = spec.shard_rows(s)[0]
        for k in range(len(rec)):
            ok = bool(rec["ok"][k])
            lines.append(
                score_line(
                    paths[start + k],
                    int(rec["pred"][k]) if ok else -1,
                    float(rec["conf"][k]) if ok else 0.0,
                )
            )
    atomic_write(
        root / SCORES,
        lambda tmp: Path(tmp).write_text(
            "".join(lines), encoding="utf-8", errors="surrogateescape"
        ),
    )
    size = sum((root / x["file"]).stat().st_size for x in shards)
    files = {name: sha256_of(root / name) for name in (IMAGES, SCORES)}
    _write_manifest(
        root,
        spec,
        complete=True,
        shards=shards,
        files=files,
        bytes=size,
        bytes_per_view=size / max(1, spec.num_images * spec.views),
    )
    return size
