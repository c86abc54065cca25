"""The training engine shared by distillation and transfer: mmengine's Runner, made safe.

:func:`build_engine` turns a model, its data loaders, an optimiser and a recipe's ``schedule``
and ``runtime`` sections into an :class:`SSLDRunner`: the same checkpoints (atomic, resumable,
``weights_only``-loadable; :mod:`ssld_zoo.engine.checkpoint`), logging, TensorBoard, AMP, DDP
and per-epoch seeding for ``ssld-zoo distill`` (:mod:`ssld_zoo.distill.runner`) and
``ssld-zoo transfer`` (:mod:`ssld_zoo.adapters.transfer`).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, Runner

from ssld_zoo.engine.checkpoint import (LAST_CHECKPOINT, SafeCheckpointHook,
                                        find_resume_checkpoint, mmengine_safe_globals,
                                        read_checkpoint)
from ssld_zoo.engine.hooks import EMAHook, EpochSeedHook, unwrap

__all__ = ["SSLDRunner", "SkipEmptyBatchTrainLoop", "build_engine", "resume_checkpoint",
           "world_size_from_env"]


class SSLDRunner(Runner):
    """mmengine's Runner whose checkpoint loads allow-list mmengine's own non-tensor objects
    (see :mod:`ssld_zoo.engine.checkpoint`) instead of disabling ``weights_only``, and refuse a
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
        # counted on the model so that they reach its log and checkpoint (the Distiller logs them)
        model.skipped_images = getattr(model, "skipped_images", 0) + skipped
        model.skipped_batches = getattr(model, "skipped_batches", 0) + 1
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


def world_size_from_env(launcher: str) -> int:
    """Processes in the job, known before torch.distributed starts."""
    if launcher == "pytorch":
        return int(os.environ.get("WORLD_SIZE", 1))
    if launcher == "slurm":
        return int(os.environ.get("SLURM_NTASKS", 1))
    if launcher in ("none", None):
        return 1
    raise ValueError(f"launcher {launcher!r}: expected one of none, pytorch, slurm")


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


def build_engine(*, model: dict | torch.nn.Module, work_dir: str | os.PathLike,
                 train_dataloader: dict, val_dataloader: dict | None, val_evaluator: Any,
                 optimizer: dict, schedule: dict, runtime: dict, cfg: Any,
                 launcher: str = "none", resume_path: str | os.PathLike | None = None,
                 custom_hooks: Sequence[Hook] = (), save_best: str | None = None,
                 paramwise_cfg: dict | None = None, constructor: str | None = None,
                 log_level: str = "INFO", experiment_name: str = "run",
                 ema_module: str = "student") -> SSLDRunner:
    """An :class:`SSLDRunner` for ``model``: epochs, warm-up and cosine from ``schedule``;
    seed, AMP, compile, EMA, SyncBN, checkpoint/validation/log intervals and TensorBoard from
    ``runtime`` (the sections of ``recipes/_base_/defaults.py``); ``optimizer`` is an mmengine
    optimizer dict, ``paramwise_cfg``/``constructor`` as mmengine's ``optim_wrapper`` takes them.
    ``cfg`` is the recipe (an mmengine Config) the run records. With ``runtime.ema`` the
    :class:`~ssld_zoo.engine.hooks.EMAHook` averages ``model.<ema_module>``; find it again
    with :func:`find_hook`."""
    rt = runtime
    cuda = torch.cuda.is_available()
    world = world_size_from_env(launcher)
    hooks: list[Hook] = [EpochSeedHook(rt["seed"]), SafeCheckpointHook()]
    if rt["ema"]:
        hooks.append(EMAHook(module=ema_module, **rt["ema"]))
    hooks += list(custom_hooks)
    optim_wrapper: dict[str, Any] = dict(type="OptimWrapper", optimizer=dict(optimizer))
    amp = _amp_dtype(rt["amp"])
    if amp:
        optim_wrapper.update(type="AmpOptimWrapper", dtype=amp)
    if paramwise_cfg is not None:
        optim_wrapper["paramwise_cfg"] = paramwise_cfg
    if constructor is not None:
        optim_wrapper["constructor"] = constructor
    vis_backends = [dict(type="LocalVisBackend")]
    if rt["tensorboard"] and _tensorboard_available():
        vis_backends.append(dict(type="TensorboardVisBackend"))
    # mmengine reads compile, sync_bn and model_wrapper_cfg from the run's config: set them on
    # a copy of the recipe, which is also what the run records (work_dir/.../<name>.py).
    cfg = cfg.copy() if hasattr(cfg, "copy") else cfg
    cfg["compile"] = rt["compile"]
    if rt["sync_bn"] and cuda and world > 1:
        cfg["sync_bn"] = "torch"  # mmengine converts BatchNorm when it wraps in DDP
    if launcher != "none" and not cuda:
        # mmengine 0.10.7's launcher calls torch.cuda.set_device and gives DDP a device id, both
        # wrong on CPU: start gloo ourselves (mmengine then skips its init) and wrap without ids.
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        cfg["model_wrapper_cfg"] = dict(type="MMDistributedDataParallel", device_ids=None,
                                        broadcast_buffers=False)
    return SSLDRunner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=train_dataloader,
        val_dataloader=val_dataloader,
        val_evaluator=val_evaluator if val_dataloader is not None else None,
        train_cfg=dict(type="SSLDEpochBasedTrainLoop", max_epochs=schedule["epochs"],
                       val_interval=rt["val_interval"]),
        val_cfg=None if val_dataloader is None else dict(),
        optim_wrapper=optim_wrapper,
        param_scheduler=_schedulers(schedule),
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=rt["log_interval"]),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="SSLDCheckpointHook", interval=rt["checkpoint_interval"],
                            by_epoch=True, max_keep_ckpts=rt["max_keep_ckpts"], save_last=True,
                            save_best=save_best if val_dataloader is not None else None,
                            rule="greater"),
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
        experiment_name=experiment_name,
        cfg=cfg,
    )
