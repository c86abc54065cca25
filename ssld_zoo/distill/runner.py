"""Build the engine's Runner from a validated recipe, train, and export the student.

``run_distill(recipe, work_dir)`` is what ``ssld-zoo distill`` calls. One process per device;
under ``torchrun ... --launcher pytorch`` the recipe's global batch is split evenly over the
processes, so a run gives the same result on 1 or N processes (up to BatchNorm statistics, which
are per process unless ``runtime.sync_bn`` is on). The runner itself (checkpoints, logging,
AMP, DDP, EMA) is the shared engine's: :mod:`ssld_zoo.engine.runner`.
"""
from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.registry import MODELS
from mmengine.runner import Runner

from ssld_zoo.distill.cache.dataset import CachedViewDataset, collate_cached
from ssld_zoo.distill.data import DistillDataset, build_train_transform, collate
from ssld_zoo.distill.distiller import Distiller
from ssld_zoo.distill.hooks import TeacherOnceHook
from ssld_zoo.distill.metrics import DistillAccuracy
from ssld_zoo.engine.hooks import EMAHook, HistoryHook, find_hook, unwrap
from ssld_zoo.engine.runner import (SSLDRunner, build_engine, resume_checkpoint,
                                    world_size_from_env)
from ssld_zoo.registry import EvalTransform

__all__ = ["build_runner", "run_distill", "DistillResult", "eval_transform_of",
           "train_transform_of", "recipe_record", "open_teacher_cache"]

MODELS.register_module(name="SSLDDistiller", module=Distiller, force=True)


@dataclass
class DistillResult:
    """What a finished run produced."""

    work_dir: Path
    export_path: Path | None
    metrics: dict[str, float] = field(default_factory=dict)   # final student metrics
    teacher_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def train_transform_of(recipe: Any) -> Callable:
    """The training transform of a run (PIL image -> uint8 tensor), from its ``data`` section."""
    d = recipe["data"]
    return build_train_transform(d["input_size"], d["scale"], d["ratio"], d["hflip"],
                                 d["auto_augment"], d["interpolation"], d["resize"])


def recipe_record(recipe: Any) -> dict[str, Any]:
    """What an exported student's card keeps of the recipe that trained it (under ``training``):
    enough to tell which recipe made an export (``benchmarks/reproduce_cifar10.py`` does)."""
    plain = recipe.to_dict() if hasattr(recipe, "to_dict") else dict(recipe)
    return {"teacher": plain["teacher"], "teacher_cache": plain["teacher_cache"],
            "student": plain["student"], "loss": plain["loss"],
            "hard_label_weight": plain["hard_label_weight"], "data": dict(plain["data"]),
            "schedule": plain["schedule"], "optimizer": plain["optimizer"],
            "seed": plain["runtime"]["seed"]}


def eval_transform_of(recipe: Any) -> EvalTransform:
    """The evaluation transform of a run, which also sets the normalisation of training: the
    card of the teacher's published weights (else the student's, else the zoo default), with
    the fields ``data.eval_transform`` sets replacing the card's."""
    from ssld_zoo.registry import get_weights
    base = EvalTransform()
    for who in (recipe["teacher"], recipe["student"]):
        if who and who.get("name") and who.get("pretrained", False) and not who.get("weights"):
            card = get_weights(who["name"])
            if card is not None:
                base = card.transform
                break
    return base.replace(**dict(recipe["data"]["eval_transform"] or {}))


def open_teacher_cache(recipe: Any, images: DistillDataset
                       ) -> tuple[CachedViewDataset, dict[str, Any]]:
    """The training set of a recipe with ``teacher_cache``, and what the Distiller needs to know
    of the cache. Refuses a cache built for another teacher, transform, normalisation or
    images, or one whose kind does not suit the loss, naming what differs."""
    from ssld_zoo.distill.cache import CacheMismatchError, TeacherCache, teacher_fingerprint
    from ssld_zoo.distill.cache.format import teacher_diff
    from ssld_zoo.distill.losses import linear_in_teacher
    c = recipe["teacher_cache"]
    cache = TeacherCache(c["path"])
    spec = cache.spec
    ident, _ = teacher_fingerprint(recipe)
    diff = teacher_diff(spec.teacher, ident)
    tf = eval_transform_of(recipe)
    for k in ("mean", "std"):
        if tuple(spec.__dict__[k]) != getattr(tf, k):
            diff.append(f"{k}: {spec.__dict__[k]} in the cache, {getattr(tf, k)} in the "
                        f"recipe's transform")
    if diff:
        raise CacheMismatchError(f"{cache.root}: built for another teacher or input "
                                 f"normalisation ({'; '.join(diff)})")
    if spec.kind == "sampled" and not linear_in_teacher(recipe["loss"]):
        raise CacheMismatchError(
            f"{cache.root}: a 'sampled' cache is zero on the classes not drawn, which only "
            f"losses linear in the teacher's probabilities tolerate (KL or SoftTargetCE at "
            f"temperature 1); loss={recipe['loss']}: build a 'topk' cache or change the loss")
    dataset = CachedViewDataset(images, cache, train_transform_of(recipe),
                                crops_per_image=c["crops_per_image"], views=c["views"])
    return dataset, {"kind": spec.kind, "num_classes": spec.num_classes}


def build_runner(recipe: Any, work_dir: str | os.PathLike, launcher: str = "none",
                 resume: bool | str = False, extra_hooks: Sequence[Hook] = (),
                 log_level: str = "INFO", allow_fresh: bool = False
                 ) -> tuple[SSLDRunner, HistoryHook]:
    """The engine's :class:`~ssld_zoo.engine.runner.SSLDRunner` for a validated recipe (an
    mmengine Config from :func:`~.config.load_recipe` or :func:`~.config.validate_recipe`).

    ``resume``: False, True (the latest checkpoint of ``work_dir``; none there is an error
    unless ``allow_fresh``) or a checkpoint file (see
    :func:`~ssld_zoo.engine.runner.resume_checkpoint`)."""
    resume_path = resume_checkpoint(work_dir, resume, allow_fresh)
    r = recipe
    d, rt = r["data"], r["runtime"]
    world = world_size_from_env(launcher)
    if d["batch_size"] % world:
        raise ValueError(f"data.batch_size={d['batch_size']} (global) does not split evenly "
                         f"over {world} processes")
    per_rank = d["batch_size"] // world
    cuda = torch.cuda.is_available()
    channels_last = cuda if rt["channels_last"] == "auto" else bool(rt["channels_last"])
    eval_tf = eval_transform_of(r)

    # Datasets first: a missing root fails here, before any process group or model exists.
    train_set = DistillDataset(d["labeled_roots"], d["unlabeled_roots"], train_transform_of(r),
                               seed=rt["seed"], classes=d["classes"])
    train_collate, cache_info = collate, None
    if r["teacher_cache"] is not None:
        train_set, cache_info = open_teacher_cache(r, train_set)
        train_collate = collate_cached
        per_rank //= r["teacher_cache"]["crops_per_image"]  # images per step; views stay B
    per_rank_images = math.ceil(len(train_set) / world)
    if per_rank < 1 or per_rank_images < per_rank:
        where = f" per process ({world} processes)" if world > 1 else ""
        raise ValueError(
            f"data.batch_size={d['batch_size']} is larger than the training set: "
            f"{per_rank} images a step{where} but {per_rank_images} training images{where}, so "
            f"an epoch would have no complete batch; set data.batch_size to at most "
            f"{len(train_set) * (r['teacher_cache'] or {}).get('crops_per_image', 1)}")
    val_set = None
    if d["val_root"]:
        val_set = DistillDataset([d["val_root"]], (), eval_tf.resize_crop(),
                                 classes=train_set.classes or d["classes"])

    workers = int(d["num_workers"])
    loader_common = dict(num_workers=workers, persistent_workers=workers > 0,
                         pin_memory=cuda, collate_fn=collate)
    train_loader = dict(dataset=train_set, batch_size=per_rank, drop_last=True,
                        sampler=dict(type="SSLDEpochIndexSampler", shuffle=True),
                        **{**loader_common, "collate_fn": train_collate})
    val_loader = None if val_set is None else dict(
        dataset=val_set, batch_size=d["val_batch_size"] or per_rank,
        sampler=dict(type="DefaultSampler", shuffle=False, round_up=False), **loader_common)
    history = HistoryHook()
    hooks: list[Hook] = [history]
    if r["teacher"] is not None and cache_info is None:
        hooks.append(TeacherOnceHook())
    model = dict(type="SSLDDistiller", student=r["student"], teacher=r["teacher"],
                 loss=r["loss"], loss_weight=r["loss_weight"],
                 hard_label_weight=r["hard_label_weight"],
                 data_preprocessor=dict(mean=eval_tf.mean, std=eval_tf.std,
                                        channels_last=channels_last),
                 teacher_cache=cache_info, mix=d["mix"])
    runner = build_engine(
        model=model, work_dir=work_dir, train_dataloader=train_loader,
        val_dataloader=val_loader, val_evaluator=dict(type=DistillAccuracy),
        optimizer=r["optimizer"], schedule=r["schedule"], runtime=rt, cfg=r,
        launcher=launcher, resume_path=resume_path, custom_hooks=hooks + list(extra_hooks),
        save_best="top1", log_level=log_level,
        experiment_name=f"{Path(r.filename or 'recipe').stem}_{uuid.uuid4().hex[:8]}")
    return runner, history


def run_distill(recipe: Any, work_dir: str | os.PathLike, launcher: str = "none",
                resume: bool | str = False, extra_hooks: Sequence[Hook] = (),
                export: bool = True, log_level: str = "INFO",
                allow_fresh: bool = False) -> DistillResult:
    """Train as the recipe says, then (rank 0) export the final student with its card.
    ``resume`` and ``allow_fresh`` as :func:`build_runner`."""
    from mmengine.dist import get_rank
    runner, history = build_runner(recipe, work_dir, launcher, resume, extra_hooks, log_level,
                                   allow_fresh=allow_fresh)
    runner.train()
    metrics = dict(history.history[-1]) if history.history else {}
    metrics.pop("epoch", None)
    result = DistillResult(Path(work_dir), None, {k: v for k, v in metrics.items()
                                                  if k in ("top1", "top5")},
                           dict(history.teacher), list(history.history))
    if export and get_rank() == 0:
        result.export_path = export_from_runner(runner, recipe, result)
    return result


def export_from_runner(runner: Runner, recipe: Any, result: DistillResult) -> Path:
    """Export the trained student of a finished runner: the EMA weights when the run has an
    :class:`~ssld_zoo.engine.hooks.EMAHook`, else the student's own."""
    from ssld_zoo.distill.export import export_student
    from ssld_zoo.registry import WeightCard
    model = unwrap(runner.model)
    ema = find_hook(runner, EMAHook)
    state = ema.state_for_export() if ema is not None else model.student.state_dict()
    s, t, d = recipe["student"], recipe["teacher"], recipe["data"]
    arch = getattr(model.student, "arch_name", s["name"])
    stem = Path(recipe.filename or "recipe").stem
    name = recipe["export"]["name"] or f"{arch}_{stem}"
    teacher = None if t is None else (t.get("weights") or t["name"])
    desc = recipe["export"]["description"] or recipe["description"] or \
        f"{arch} distilled from {teacher} by ssld-zoo ({stem})"
    record = recipe_record(recipe)
    dataset = runner.train_dataloader.dataset
    training = {
        "recipe": recipe.filename, **record,
        # The whole data section (roots, batch, augmentation), so that the card alone says how
        # the student was trained, plus what the dataset resolved (counts, class names).
        "data": {**record["data"], "num_images": len(dataset),
                 "num_labeled": dataset.num_labeled, "classes": dataset.classes or None},
        "metrics": result.metrics, "teacher_metrics": result.teacher_metrics,
        "history": result.history, "ema": ema is not None,
    }
    out = Path(result.work_dir) / f"{name}.safetensors"
    card = WeightCard(
        name=name, arch=arch, urls=(out.name,), top1=result.metrics.get("top1"),
        top1_source=(f"ssld-zoo distill {stem}, top-1 on {d['val_root']}" if d["val_root"]
                     else ""),
        teacher=teacher, transform=eval_transform_of(recipe),
        num_classes=model.student.num_classes, description=desc)
    return export_student(state, out, card, training=training)
