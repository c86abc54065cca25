"""Build an mmengine Runner from a validated recipe, train, and export the student.

``run_distill(recipe, work_dir)`` is what ``ssld-zoo distill`` calls. One process per device;
under ``torchrun ... --launcher pytorch`` the recipe's global batch is split evenly over the
processes, so a run gives the same result on 1 or N processes (up to BatchNorm statistics, which
are per process unless ``runtime.sync_bn`` is on).
"""
from __future__ import annotations

import copy
import math
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.registry import LOOPS, MODELS
from mmengine.runner import EpochBasedTrainLoop, Runner

from ssld_zoo.distill.cache.dataset import CachedViewDataset, collate_cached
from ssld_zoo.distill.checkpoint import (LAST_CHECKPOINT, SafeCheckpointHook,
                                         find_resume_checkpoint, mmengine_safe_globals,
                                         read_checkpoint)
from ssld_zoo.distill.data import (DistillDataset, build_eval_transform, build_train_transform,
                                   collate)
from ssld_zoo.distill.distiller import Distiller, unwrap
from ssld_zoo.distill.hooks import EpochSeedHook, StudentEMAHook, TeacherOnceHook
from ssld_zoo.distill.metrics import DistillAccuracy

__all__ = ["SSLDRunner", "build_runner", "run_distill", "DistillResult", "HistoryHook",
           "world_size_from_env", "eval_transform_of", "train_transform_of", "recipe_record",
           "open_teacher_cache", "SkipEmptyBatchTrainLoop", "resume_checkpoint"]

MODELS.register_module(name="SSLDDistiller", module=Distiller, force=True)


class SSLDRunner(Runner):
    """mmengine's Runner whose checkpoint loads allow-list mmengine's own non-tensor objects
    (see :mod:`ssld_zoo.distill.checkpoint`) instead of disabling ``weights_only``, and refuse a
    file that is not a training checkpoint in one line (:func:`~.checkpoint.read_checkpoint`)."""

    def load_checkpoint(self, filename: str, map_location: Any = "cpu", strict: bool = False,
                        revise_keys: list = [(r"^module.", "")]) -> dict:  # noqa: B006 (mmengine's)
        from mmengine.runner.checkpoint import _load_checkpoint_to_model
        checkpoint = read_checkpoint(filename, map_location)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(unwrap(self.model), checkpoint, strict,
                                               revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {filename}")
        return checkpoint

    def resume(self, *args: Any, **kwargs: Any) -> None:
        with mmengine_safe_globals():
            return super().resume(*args, **kwargs)


@LOOPS.register_module(name="SSLDEpochBasedTrainLoop", force=True)
class SkipEmptyBatchTrainLoop(EpochBasedTrainLoop):
    """mmengine's epoch loop, except that a batch left with too few readable images to train
    on (none; or one, when a BatchNorm layer normalises with batch statistics) is skipped: no
    forward, no optimiser step (a loss over no sample is NaN), the iteration counted as usual
    (so the schedule and a resumed run stay in step), and the skip logged and counted
    (``skipped_batches``, ``skipped_images`` in the training log). Under DDP the processes agree
    first: if any of them has such a batch, all skip that step."""

    _min_images: int | None = None

    def run_iter(self, idx: int, data_batch: Any) -> None:
        n = self._readable(data_batch)
        if n >= self._min_batch():
            return super().run_iter(idx, data_batch)
        model = unwrap(self.runner.model)
        skipped = int(data_batch.get("skipped", 0)) if isinstance(data_batch, dict) else 0
        model.skipped_images += skipped
        model.skipped_batches += 1
        self.runner.logger.warning(
            f"epoch {self.epoch + 1}, step {idx + 1}: {n} readable image(s) in this batch "
            f"({skipped} unreadable here), fewer than the {self._min_batch()} a step needs; "
            f"skipped without an optimiser step ({model.skipped_batches} batch(es) skipped so far)")
        self.runner.call_hook("before_train_iter", batch_idx=idx, data_batch=data_batch)
        with warnings.catch_warnings():  # the schedule follows the iteration, stepped or not
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            warnings.filterwarnings("ignore", "Detected call of `scheduler.step", UserWarning)
            self.runner.call_hook("after_train_iter", batch_idx=idx, data_batch=data_batch,
                                  outputs=None)
        self._iter += 1

    def _min_batch(self) -> int:
        """2 when a BatchNorm layer of the student or teacher trains on batch statistics (one
        sample has no variance to normalise by), else 1."""
        if self._min_images is None:
            model = unwrap(self.runner.model)  # in train mode: run_epoch has set it
            bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
                     for m in model.modules())
            self._min_images = 2 if bn else 1
        return self._min_images

    @staticmethod
    def _readable(data_batch: Any) -> int:
        """The fewest readable images of this step's batch over all processes."""
        from mmengine.dist import all_reduce, get_world_size
        inputs = data_batch.get("inputs") if isinstance(data_batch, dict) else None
        n = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else 2 ** 31
        if get_world_size() > 1:
            count = torch.tensor([n], dtype=torch.int64)
            all_reduce(count, op="min")
            n = int(count.item())
        return n


def resume_checkpoint(work_dir: str | os.PathLike, resume: bool | str | os.PathLike,
                      allow_fresh: bool = False) -> Path | None:
    """The checkpoint a run continues from: ``resume`` itself when it is a path, the latest of
    ``work_dir`` when it is True (see :func:`~.checkpoint.find_resume_checkpoint`), None when it
    is False. With ``resume=True`` and no checkpoint, ``FileNotFoundError`` unless
    ``allow_fresh`` (then None: the run starts from scratch)."""
    if not resume:
        return None
    if not isinstance(resume, bool):
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"--resume {path}: no such checkpoint file")
        return path
    path = find_resume_checkpoint(work_dir)
    if path is None and not allow_fresh:
        raise FileNotFoundError(
            f"--resume: no checkpoint to resume from in {work_dir} (no {LAST_CHECKPOINT}, no "
            f"complete epoch_N.pth); check --work-dir, or add --allow-fresh to start from "
            f"scratch when there is none")
    return path


class HistoryHook(Hook):
    """Records per-epoch train loss, learning rate and validation metrics (for the model card
    and the demo's plot)."""

    priority = "LOW"

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.teacher: dict[str, float] = {}

    def _row(self, epoch: int) -> dict:
        if not self.history or self.history[-1]["epoch"] != epoch:
            self.history.append({"epoch": epoch})
        return self.history[-1]

    def after_train_epoch(self, runner) -> None:
        hub = runner.message_hub
        row = self._row(runner.epoch + 1)  # the loop counts the epoch after this hook
        for key, name in (("train/loss", "loss"), ("train/lr", "lr")):
            try:
                row[name] = float(hub.get_scalar(key).current())
            except KeyError:
                pass

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        row = self._row(runner.epoch)
        for k, v in (metrics or {}).items():
            if k.startswith("teacher_"):
                self.teacher[k[len("teacher_"):]] = float(v)
            else:
                row[k] = float(v)


@dataclass
class DistillResult:
    """What a finished run produced."""

    work_dir: Path
    export_path: Path | None
    metrics: dict[str, float] = field(default_factory=dict)   # final student metrics
    teacher_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def world_size_from_env(launcher: str) -> int:
    """Processes in the job, known before torch.distributed starts."""
    if launcher == "pytorch":
        return int(os.environ.get("WORLD_SIZE", 1))
    if launcher == "slurm":
        return int(os.environ.get("SLURM_NTASKS", 1))
    if launcher in ("none", None):
        return 1
    raise ValueError(f"launcher {launcher!r}: expected one of none, pytorch, slurm")


def train_transform_of(recipe: dict) -> Callable:
    """The training transform of a run (PIL image -> uint8 tensor), from its ``data`` section."""
    d = recipe["data"]
    return build_train_transform(d["input_size"], d["scale"], d["ratio"], d["hflip"],
                                 d["auto_augment"], d["interpolation"], d["resize"])


def recipe_record(recipe: dict) -> dict[str, Any]:
    """What an exported student's card keeps of the recipe that trained it (under ``training``):
    enough to tell which recipe made an export (``benchmarks/reproduce_cifar10.py`` does)."""
    return {"teacher": recipe["teacher"], "teacher_cache": recipe["teacher_cache"],
            "student": recipe["student"], "loss": recipe["loss"],
            "hard_label_weight": recipe["hard_label_weight"], "data": dict(recipe["data"]),
            "schedule": recipe["schedule"], "optimizer": recipe["optimizer"],
            "seed": recipe["runtime"]["seed"]}


def eval_transform_of(recipe: dict) -> dict[str, Any]:
    """The evaluation transform of a run: ``data.eval_transform``, else the card of the teacher's
    (or student's) published weights, else the zoo default; plus the recipe's mean/std."""
    from ssld_zoo.registry import EvalTransform, get_weights
    d = recipe["data"]
    base = EvalTransform()
    for who in (recipe["teacher"], recipe["student"]):
        if who and who.get("name") and who.get("pretrained", False) and not who.get("weights"):
            card = get_weights(who["name"])
            if card is not None:
                base = card.transform
                break
    tf = {"input_size": base.input_size, "resize": base.resize,
          "interpolation": base.interpolation}
    if d["eval_transform"]:
        bad = sorted(set(d["eval_transform"]) - set(tf))
        if bad:
            raise ValueError(f"data.eval_transform: unknown key(s) {', '.join(bad)}; valid: "
                             f"{', '.join(sorted(tf))}")
        tf.update(d["eval_transform"])
    tf["mean"], tf["std"] = tuple(d["mean"]), tuple(d["std"])
    return tf


def open_teacher_cache(recipe: dict, images: DistillDataset
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
    d = recipe["data"]
    for k in ("mean", "std"):
        if tuple(spec.__dict__[k]) != tuple(float(v) for v in d[k]):
            diff.append(f"data.{k}: {spec.__dict__[k]} in the cache, {tuple(d[k])} in the recipe")
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


def _amp_dtype(amp: str) -> str | None:
    if amp == "none" or not torch.cuda.is_available():
        return None  # fp32 on CPU: mmengine's AMP wrapper is GPU-only, and CPU AMP is slower
    if amp == "auto":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return {"bf16": "bfloat16", "fp16": "float16"}[amp]


def _schedulers(s: dict) -> list[dict]:
    epochs, warm = s["epochs"], s["warmup_epochs"]
    out = []
    if warm > 0:
        out.append(dict(type="LinearLR", start_factor=s["warmup_start_factor"], by_epoch=True,
                        begin=0, end=warm, convert_to_iter_based=True))
    out.append(dict(type="CosineAnnealingLR", T_max=epochs - warm, eta_min=s["eta_min"],
                    by_epoch=True, begin=warm, end=epochs, convert_to_iter_based=True))
    return out


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
        return True
    except ImportError:
        return False


def build_runner(recipe: dict, work_dir: str | os.PathLike, launcher: str = "none",
                 resume: bool | str = False, extra_hooks: Sequence[Hook] = (),
                 log_level: str = "INFO", allow_fresh: bool = False
                 ) -> tuple[SSLDRunner, HistoryHook]:
    """An :class:`SSLDRunner` for a validated recipe (see :func:`~.config.load_recipe`).

    ``resume``: False, True (the latest checkpoint of ``work_dir``; none there is an error
    unless ``allow_fresh``) or a checkpoint file (see :func:`resume_checkpoint`)."""
    resume_path = resume_checkpoint(work_dir, resume, allow_fresh)
    r = copy.deepcopy(recipe)
    d, rt = r["data"], r["runtime"]
    world = world_size_from_env(launcher)
    if d["batch_size"] % world:
        raise ValueError(f"data.batch_size={d['batch_size']} (global) does not split evenly "
                         f"over {world} processes")
    per_rank = d["batch_size"] // world
    cuda = torch.cuda.is_available()
    channels_last = cuda if rt["channels_last"] == "auto" else bool(rt["channels_last"])

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
    eval_tf = eval_transform_of(r)
    val_set = None
    if d["val_root"]:
        val_set = DistillDataset([d["val_root"]], (), build_eval_transform(
            eval_tf["input_size"], eval_tf["resize"], eval_tf["interpolation"]),
            classes=train_set.classes or d["classes"])

    workers = int(d["num_workers"])
    loader_common = dict(num_workers=workers, persistent_workers=workers > 0,
                         pin_memory=cuda, collate_fn=collate)
    train_loader = dict(dataset=train_set, batch_size=per_rank, drop_last=True,
                        sampler=dict(type="SSLDEpochIndexSampler", shuffle=True),
                        **{**loader_common, "collate_fn": train_collate})
    history = HistoryHook()
    hooks: list[Hook] = [EpochSeedHook(rt["seed"]), SafeCheckpointHook(), history]
    if r["teacher"] is not None and cache_info is None:
        hooks.append(TeacherOnceHook())
    ema_hook = None
    if rt["ema"]:
        ema_hook = StudentEMAHook(**rt["ema"])
        hooks.append(ema_hook)
    hooks += list(extra_hooks)

    model = dict(type="SSLDDistiller", student=r["student"], teacher=r["teacher"],
                 loss=r["loss"], loss_weight=r["loss_weight"],
                 hard_label_weight=r["hard_label_weight"],
                 data_preprocessor=dict(mean=tuple(d["mean"]), std=tuple(d["std"]),
                                        channels_last=channels_last),
                 teacher_cache=cache_info, mix=d["mix"])
    amp = _amp_dtype(rt["amp"])
    optim_wrapper: dict[str, Any] = dict(type="OptimWrapper", optimizer=dict(r["optimizer"]))
    if amp:
        optim_wrapper.update(type="AmpOptimWrapper", dtype=amp)
    vis_backends = [dict(type="LocalVisBackend")]
    if rt["tensorboard"] and _tensorboard_available():
        vis_backends.append(dict(type="TensorboardVisBackend"))

    runner_cfg = {k: v for k, v in r.items() if not k.startswith("_")}
    runner_cfg["compile"] = rt["compile"]
    if rt["sync_bn"] and cuda and world > 1:
        runner_cfg["sync_bn"] = "torch"  # mmengine converts BatchNorm when it wraps in DDP
    if launcher != "none" and not cuda:
        # mmengine 0.10.7's launcher calls torch.cuda.set_device and gives DDP a device id, both
        # wrong on CPU: start gloo ourselves (mmengine then skips its init) and wrap without ids.
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        runner_cfg["model_wrapper_cfg"] = dict(type="MMDistributedDataParallel",
                                               device_ids=None, broadcast_buffers=False)
    from mmengine.config import Config
    runner = SSLDRunner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=train_loader,
        val_dataloader=None if val_set is None else dict(
            dataset=val_set, batch_size=d["val_batch_size"] or per_rank,
            sampler=dict(type="DefaultSampler", shuffle=False, round_up=False), **loader_common),
        val_evaluator=None if val_set is None else dict(type=DistillAccuracy),
        train_cfg=dict(type="SSLDEpochBasedTrainLoop", max_epochs=r["schedule"]["epochs"],
                       val_interval=rt["val_interval"]),
        val_cfg=None if val_set is None else dict(),
        optim_wrapper=optim_wrapper,
        param_scheduler=_schedulers(r["schedule"]),
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=rt["log_interval"]),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="SSLDCheckpointHook", interval=rt["checkpoint_interval"],
                            by_epoch=True, max_keep_ckpts=rt["max_keep_ckpts"], save_last=True,
                            save_best="top1" if val_set is not None else None, rule="greater"),
            sampler_seed=dict(type="DistSamplerSeedHook")),
        custom_hooks=hooks,
        launcher=launcher,
        env_cfg=dict(cudnn_benchmark=cuda, dist_cfg=dict(backend="nccl" if cuda else "gloo"),
                     mp_cfg=dict(mp_start_method="fork" if os.name != "nt" else "spawn")),
        randomness=dict(seed=rt["seed"], deterministic=rt["deterministic"]),
        resume=resume_path is not None,
        load_from=None if resume_path is None else str(resume_path),
        log_processor=dict(by_epoch=True, window_size=rt["log_interval"]),
        log_level=log_level,
        visualizer=dict(type="Visualizer", vis_backends=vis_backends),
        experiment_name=f"{Path(recipe.get('_path', 'recipe')).stem}_{uuid.uuid4().hex[:8]}",
        cfg=Config(runner_cfg),
    )
    runner._ssld_ema = ema_hook  # type: ignore[attr-defined]
    return runner, history


def run_distill(recipe: dict, work_dir: str | os.PathLike, launcher: str = "none",
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


def export_from_runner(runner: Runner, recipe: dict, result: DistillResult) -> Path:
    """Export the trained student (the EMA weights when EMA is on) of a finished runner."""
    from ssld_zoo.distill.export import export_student
    model = unwrap(runner.model)
    ema = getattr(runner, "_ssld_ema", None)
    state = ema.state_for_export() if ema is not None else model.student.state_dict()
    s, t, d = recipe["student"], recipe["teacher"], recipe["data"]
    arch = getattr(model.student, "arch_name", s["name"])
    stem = Path(recipe.get("_path", "recipe")).stem
    name = recipe["export"]["name"] or f"{arch}_{stem}"
    teacher = None if t is None else (t.get("weights") or t["name"])
    desc = recipe["export"]["description"] or recipe["description"] or \
        f"{arch} distilled from {teacher} by ssld-zoo ({stem})"
    record = recipe_record(recipe)
    training = {
        "recipe": recipe.get("_path"), **record,
        # The whole data section (roots, batch, augmentation), so that the card alone says how
        # the student was trained, plus what the dataset resolved (counts, class names).
        "data": {**record["data"], "num_images": len(runner.train_dataloader.dataset),
                 "num_labeled": runner.train_dataloader.dataset.num_labeled,
                 "classes": runner.train_dataloader.dataset.classes or None},
        "metrics": result.metrics, "teacher_metrics": result.teacher_metrics,
        "history": result.history, "ema": bool(ema),
    }
    return export_student(
        state, Path(result.work_dir) / f"{name}.safetensors", name=name, arch=arch,
        num_classes=model.student.num_classes, transform=eval_transform_of(recipe),
        top1=result.metrics.get("top1"),
        top1_source=(f"ssld-zoo distill {stem}, top-1 on {d['val_root']}" if d["val_root"]
                     else ""),
        teacher=teacher, description=desc, training=training)
