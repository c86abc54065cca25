"""Run a recipe (an mmengine Runner config) as ``ssld-zoo distill`` does, and export the student.

``run_distill(recipe, work_dir)`` builds the recipe's Runner with what a launch adds on top of
``Runner.from_cfg``: the recipe's ``train_dataloader.batch_size`` is the GLOBAL batch, split
evenly over the processes under ``torchrun ... --launcher pytorch`` (so a run gives the same
result on 1 or N processes, up to BatchNorm statistics, which are per process unless the recipe
sets ``sync_bn='torch'``); the training set is opened first, so a missing root or a batch larger
than the data fails before any process group or model exists; a teacher cache is checked against
the recipe's teacher and loss. Then it trains and (rank 0) exports the final student.
"""

from __future__ import annotations

import copy
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, RUNNERS
from mmengine.runner import Runner

from ssld_zoo.distill.recipes import train_images_cfg
from ssld_zoo.engine.hooks import HistoryHook, ModuleEMAHook, find_hook, unwrap
from ssld_zoo.engine.models import spec_text
from ssld_zoo.engine.runner import prepare_launch, resume_checkpoint, world_size_from_env
from ssld_zoo.registry import EvalTransform

__all__ = [
    "build_runner",
    "run_distill",
    "DistillResult",
    "eval_transform_of",
    "recipe_record",
    "check_teacher_cache",
    "export_from_runner",
]


@dataclass
class DistillResult:
    """What a finished run produced."""

    work_dir: Path
    export_path: Path | None
    metrics: dict[str, float] = field(default_factory=dict)  # final student metrics
    teacher_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def recipe_record(recipe: Any) -> dict[str, Any]:
    """What an exported student's card keeps of the recipe that trained it (under ``training``):
    enough to tell which recipe made an export (``benchmarks/reproduce_cifar10.py`` does)."""
    plain = recipe.to_dict() if hasattr(recipe, "to_dict") else dict(recipe)
    model = plain["model"]
    return {
        "teacher": model.get("teacher"),
        "student": model.get("student"),
        "teacher_cache": model.get("teacher_cache"),
        "loss": model.get("loss"),
        "hard_label_weight": model.get("hard_label_weight", 0.0),
        "data": plain["train_dataloader"]["dataset"],
        "batch_size": plain["train_dataloader"]["batch_size"],
        "optim_wrapper": plain["optim_wrapper"],
        "param_scheduler": plain.get("param_scheduler"),
        "max_epochs": plain["train_cfg"].get("max_epochs"),
        "seed": (plain.get("randomness") or {}).get("seed"),
    }


def eval_transform_of(recipe: Any, model: Any) -> EvalTransform:
    """The evaluation transform of a trained student: the recipe's validation crop
    (``ResizeCenterCrop``; else the default resize 256 / crop 224) with the student's own
    normalisation (its :class:`~ssld_zoo.engine.models.ModelInput`)."""
    tf = EvalTransform()
    val = (recipe.get("val_dataloader") or {}).get("dataset") or {}
    crop = val.get("transform") if isinstance(val, dict) else None
    if isinstance(crop, dict) and crop.get("type") == "ResizeCenterCrop":
        tf = tf.replace(**{k: v for k, v in crop.items() if k != "type"})
    settings = model.student_input.settings()
    return tf.replace(mean=tuple(settings["mean"]), std=tuple(settings["std"]))


def check_teacher_cache(recipe: Any, images: Any) -> None:
    """Refuse a teacher cache built for another teacher, normalisation or images, or one whose
    kind does not suit the loss, naming what differs (before any training starts)."""
    from ssld_zoo.distill.cache import CacheMismatchError, TeacherCache, teacher_fingerprint
    from ssld_zoo.distill.cache.build import teacher_normalisation
    from ssld_zoo.distill.cache.format import teacher_diff
    from ssld_zoo.distill.losses import linear_in_teacher

    model = recipe["model"]
    cache = TeacherCache(model["teacher_cache"])
    ds = recipe["train_dataloader"]["dataset"]
    if ds.get("type") != "CachedViewDataset" or os.path.abspath(
        str(ds.get("cache"))
    ) != os.path.abspath(str(cache.root)):
        raise CacheMismatchError(
            f"model.teacher_cache={model['teacher_cache']!r} but "
            f"train_dataloader.dataset is not a CachedViewDataset of that "
            f"folder (cache={ds.get('cache')!r})"
        )
    ident = teacher_fingerprint(recipe)  # a weights file or card is hashed, the teacher not built
    diff = teacher_diff(cache.spec.teacher, ident)
    mean, std = teacher_normalisation(recipe)
    input_settings = {"mean": mean, "std": std}
    for k in ("mean", "std"):
        if tuple(cache.spec.__dict__[k]) != tuple(input_settings[k]):
            diff.append(
                f"{k}: {cache.spec.__dict__[k]} in the cache, {input_settings[k]} "
                f"for the recipe's teacher"
            )
    if diff:
        raise CacheMismatchError(
            f"{cache.root}: built for another teacher or input normalisation ({'; '.join(diff)})"
        )
    if cache.spec.kind == "sampled" and not linear_in_teacher(model.get("loss", "SymmetricKL")):
        raise CacheMismatchError(
            f"{cache.root}: a 'sampled' cache is zero on the classes not drawn, which only "
            f"losses linear in the teacher's probabilities tolerate (KL or SoftTargetCE at "
            f"temperature 1); loss={model.get('loss')}: build a 'topk' cache or change the loss"
        )


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401

        return True
    except ImportError:
        return False


def build_runner(
    recipe: Config,
    work_dir: str | os.PathLike,
    launcher: str = "none",
    resume: bool | str = False,
    extra_hooks: Sequence[Hook] = (),
    log_level: str = "INFO",
    allow_fresh: bool = False,
) -> Runner:
    """The recipe's Runner (its ``runner_type``, else mmengine's) for a launch by
    ``ssld-zoo distill`` (see the module doc). ``resume``: False, True (the latest checkpoint of
    ``work_dir``; none there is an error unless ``allow_fresh``) or a checkpoint file."""
    resume_path = resume_checkpoint(work_dir, resume, allow_fresh)
    cfg = copy.deepcopy(recipe)
    world = world_size_from_env(launcher)
    loader = cfg["train_dataloader"]
    batch = int(loader["batch_size"])
    if batch % world:
        raise ValueError(
            f"train_dataloader.batch_size={batch} (global) does not split evenly "
            f"over {world} processes"
        )
    per_rank = batch // world
    ds_cfg = loader["dataset"]
    crops = (
        int(ds_cfg.get("crops_per_image", 1)) if ds_cfg.get("type") == "CachedViewDataset" else 1
    )
    if per_rank % crops:
        raise ValueError(
            f"train_dataloader.batch_size={batch} (views per step) is not a "
            f"multiple of train_dataloader.dataset.crops_per_image={crops} on each "
            f"of {world} processes"
        )
    per_rank //= crops  # images per step; a cached image brings `crops` views
    if cfg["model"].get("teacher_cache"):
        check_teacher_cache(cfg, train_images_cfg(cfg))
    # The training set first: a missing root fails here, before any process group or model
    # (a second scan of the folders; the Runner builds the set it trains on from the config).
    train_set = DATASETS.build(ds_cfg) if isinstance(ds_cfg, dict) else ds_cfg
    per_rank_images = math.ceil(len(train_set) / world)
    if per_rank < 1 or per_rank_images < per_rank:
        where = f" per process ({world} processes)" if world > 1 else ""
        raise ValueError(
            f"train_dataloader.batch_size={batch} is larger than the training set: {per_rank} "
            f"images a step{where} but {per_rank_images} training images{where}, so an epoch "
            f"would have no complete batch; set it to at most {len(train_set) * crops}"
        )
    loader["batch_size"] = per_rank
    del train_set  # the Runner builds its own: a config holds no built objects (it is dumped)
    # the validation set too: the Runner builds it only once the models exist, and a missing
    # val root should be named ("val root ... does not exist") before that
    val_ds = (cfg.get("val_dataloader") or {}).get("dataset")
    if isinstance(val_ds, dict):
        DATASETS.build(val_ds)
    cfg["work_dir"] = str(work_dir)
    cfg["log_level"] = log_level
    name = Path(getattr(recipe, "filename", None) or "recipe").stem
    cfg["experiment_name"] = f"{name}_{uuid.uuid4().hex[:8]}"
    prepare_launch(cfg, launcher)
    vis = cfg.get("visualizer") or {}
    if vis.get("vis_backends") and not _tensorboard_available():
        vis["vis_backends"] = [
            b for b in vis["vis_backends"] if b.get("type") != "TensorboardVisBackend"
        ]
    if resume_path is not None:
        cfg["resume"], cfg["load_from"] = True, str(resume_path)
    runner = RUNNERS.build(cfg) if cfg.get("runner_type") else Runner.from_cfg(cfg)
    for hook in extra_hooks:
        runner.register_hook(hook)
    return runner


def run_distill(
    recipe: Config,
    work_dir: str | os.PathLike,
    launcher: str = "none",
    resume: bool | str = False,
    extra_hooks: Sequence[Hook] = (),
    export: bool = True,
    log_level: str = "INFO",
    allow_fresh: bool = False,
) -> DistillResult:
    """Train as the recipe says, then (rank 0) export the final student with its card.
    ``resume`` and ``allow_fresh`` as :func:`build_runner`."""
    from mmengine.dist import get_rank

    runner = build_runner(
        recipe, work_dir, launcher, resume, extra_hooks, log_level, allow_fresh=allow_fresh
    )
    runner.train()
    history = find_hook(runner, HistoryHook)
    rows = list(history.history) if history is not None else []
    metrics = dict(rows[-1]) if rows else {}
    result = DistillResult(
        Path(work_dir),
        None,
        {k: v for k, v in metrics.items() if k in ("top1", "top5")},
        dict(history.teacher) if history is not None else {},
        rows,
    )
    if export and get_rank() == 0:
        result.export_path = export_from_runner(runner, recipe, result)
    return result


def export_from_runner(runner: Runner, recipe: Any, result: DistillResult) -> Path:
    """Export the trained student of a finished runner: the EMA weights when the run has a
    :class:`~ssld_zoo.engine.hooks.ModuleEMAHook`, else the student's own; a zoo student as
    ``<name>.safetensors`` + card, any other as that plus the files its library loads
    (:func:`~ssld_zoo.weights.export.export_with_card`)."""
    from ssld_zoo.registry import WeightCard
    from ssld_zoo.weights.export import export_with_card

    model = unwrap(runner.model)
    ema = find_hook(runner, ModuleEMAHook)
    state = ema.state_for_export() if ema is not None else model.student.state_dict()
    m = recipe["model"]
    student_spec, teacher_spec = m["student"], m.get("teacher")
    arch = getattr(model.student, "arch_name", None) or spec_text(student_spec)
    stem = Path(getattr(recipe, "filename", None) or "recipe").stem
    export = recipe.get("export") or {}
    name = export.get("name") or f"{arch.replace('/', '_')}_{stem}"
    teacher = (
        None
        if teacher_spec is None
        else (teacher_spec.get("weights") if isinstance(teacher_spec, dict) else None)
        or spec_text(teacher_spec)
    )
    desc = (
        export.get("description")
        or recipe.get("description")
        or f"{arch} distilled from {teacher} by ssld-zoo ({stem})"
    )
    record = recipe_record(recipe)
    dataset = runner.train_dataloader.dataset
    images = getattr(dataset, "images", dataset)
    val = ((recipe.get("val_dataloader") or {}).get("dataset") or {}).get("labeled_roots")
    training = {
        "recipe": getattr(recipe, "filename", None),
        **record,
        # what the dataset resolved (counts, class names) beside what the recipe said
        "data": {
            **dict(record["data"]),
            "num_images": len(dataset),
            "num_labeled": images.num_labeled,
            "classes": images.classes or None,
        },
        "metrics": result.metrics,
        "teacher_metrics": result.teacher_metrics,
        "history": result.history,
        "ema": ema is not None,
    }
    out = Path(result.work_dir) / f"{name}.safetensors"
    card = WeightCard(
        name=name,
        arch=arch,
        urls=(out.name,),
        top1=result.metrics.get("top1"),
        top1_source=f"ssld-zoo distill {stem}, top-1 on {val[0]}" if val else "",
        teacher=teacher,
        transform=eval_transform_of(recipe, model),
        num_classes=model.num_classes,
        description=desc,
    )
    return export_with_card(state, out, card, training=training)
