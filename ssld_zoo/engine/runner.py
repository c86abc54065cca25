"""The training engine shared by distillation and transfer: mmengine's Runner, made safe.

A run is an mmengine Runner config (``recipes/_base_/default_runtime.py`` has the pieces every
recipe shares): :class:`SSLDRunner` loads checkpoints under torch's ``weights_only`` with
mmengine's own non-tensor objects allow-listed for the load only (see
:mod:`ssld_zoo.engine.checkpoint`), :class:`SkipEmptyBatchTrainLoop` survives batches of
unreadable images, :func:`auto_amp_optim_wrapper` is AMP on a GPU and fp32 on a CPU.
:func:`prepare_launch` makes the few changes a launch needs (CPU DDP, SyncBN only on GPUs).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import LOOPS, OPTIM_WRAPPERS, RUNNERS
from mmengine.runner import EpochBasedTrainLoop, Runner

from ssld_zoo.engine.checkpoint import (
    LAST_CHECKPOINT,
    find_resume_checkpoint,
    mmengine_safe_globals,
    read_checkpoint,
)
from ssld_zoo.engine.hooks import unwrap

__all__ = [
    "SSLDRunner",
    "SkipEmptyBatchTrainLoop",
    "auto_amp_optim_wrapper",
    "prepare_launch",
    "resume_checkpoint",
    "world_size_from_env",
]


@RUNNERS.register_module()
class SSLDRunner(Runner):
    """mmengine's Runner whose checkpoint loads allow-list, for the load only, the numpy types
    mmengine leaves in optimizer and scheduler states (see :mod:`ssld_zoo.engine.checkpoint`)
    instead of disabling ``weights_only``. Recipes name it (``runner_type``); a plain
    ``Runner.from_cfg`` trains them the same way and resumes checkpoints without numpy state."""

    def load_checkpoint(self, filename: str, *args: Any, **kwargs: Any) -> dict:
        with mmengine_safe_globals():
            return super().load_checkpoint(filename, *args, **kwargs)


@LOOPS.register_module()
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
            f"skipped without an optimiser step ({model.skipped_batches} batch(es) skipped so far)"
        )
        self.runner.call_hook("before_train_iter", batch_idx=idx, data_batch=data_batch)
        with warnings.catch_warnings():  # the schedule follows the iteration, stepped or not
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            warnings.filterwarnings("ignore", "Detected call of `scheduler.step", UserWarning)
            self.runner.call_hook(
                "after_train_iter", batch_idx=idx, data_batch=data_batch, outputs=None
            )
        self._iter += 1

    def _min_batch(self) -> int:
        """2 when a BatchNorm layer of the student or teacher trains on batch statistics (one
        sample has no variance to normalise by), else 1."""
        if self._min_images is None:
            model = unwrap(self.runner.model)  # in train mode: run_epoch has set it
            bn = any(
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
                for m in model.modules()
            )
            self._min_images = 2 if bn else 1
        return self._min_images

    @staticmethod
    def _readable(data_batch: Any) -> int:
        """The fewest readable images of this step's batch over all processes."""
        from mmengine.dist import all_reduce, get_world_size

        inputs = data_batch.get("inputs") if isinstance(data_batch, dict) else None
        n = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else 2**31
        if get_world_size() > 1:
            count = torch.tensor([n], dtype=torch.int64)
            all_reduce(count, op="min")
            n = int(count.item())
        return n


def resume_checkpoint(
    work_dir: str | os.PathLike, resume: bool | str | os.PathLike, allow_fresh: bool = False
) -> Path | None:
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
        read_checkpoint(path)  # one line naming the file when it cannot be resumed from
        return path
    path = find_resume_checkpoint(work_dir)
    if path is None and not allow_fresh:
        raise FileNotFoundError(
            f"--resume: no checkpoint to resume from in {work_dir} (no {LAST_CHECKPOINT}, no "
            f"complete epoch_N.pth); check --work-dir, or add --allow-fresh to start from "
            f"scratch when there is none"
        )
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


@OPTIM_WRAPPERS.register_module()
def auto_amp_optim_wrapper(
    optimizer: torch.optim.Optimizer, amp: str = "auto", **kwargs: Any
) -> OptimWrapper:
    """mmengine's ``AmpOptimWrapper`` on a GPU (``amp``: ``auto`` = bf16 where supported, else
    fp16; ``bf16``; ``fp16``), its plain ``OptimWrapper`` for ``amp='none'`` or on a CPU (its AMP
    wrapper is GPU-only, and CPU autocast was slower); ``kwargs`` go to the wrapper."""
    if amp not in ("auto", "bf16", "fp16", "none"):
        raise ValueError(f"optim_wrapper.amp={amp!r}: expected one of auto, bf16, fp16, none")
    if amp == "none" or not torch.cuda.is_available():
        return OptimWrapper(optimizer=optimizer, **kwargs)
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = {"bf16": "bfloat16", "fp16": "float16"}[amp]
    return AmpOptimWrapper(optimizer=optimizer, dtype=dtype, **kwargs)


def prepare_launch(cfg: Any, launcher: str) -> None:
    """Adjust a run config in place for where it runs: gloo instead of NCCL and DDP without
    device ids on a CPU (mmengine 0.10.7's launcher assumes GPUs), SyncBN only with several
    GPUs, cuDNN autotuning only with CUDA."""
    cuda = torch.cuda.is_available()
    cfg["launcher"] = launcher
    env = cfg.setdefault("env_cfg", {})
    env["cudnn_benchmark"] = bool(env.get("cudnn_benchmark", True)) and cuda
    env.setdefault("dist_cfg", {})["backend"] = "nccl" if cuda else "gloo"
    if cfg.get("sync_bn") and not (cuda and world_size_from_env(launcher) > 1):
        cfg.pop("sync_bn")
    if launcher != "none" and not cuda:
        # start gloo ourselves (mmengine then skips its init, which calls cuda.set_device)
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        cfg["model_wrapper_cfg"] = dict(
            type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False
        )
