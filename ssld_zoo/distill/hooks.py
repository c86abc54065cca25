"""mmengine hooks of the distillation runner: per-epoch seeding, evaluate the teacher once, an
EMA of the student only.

(The rich progress bar lives in ``ssld_zoo/cli/distill.py``: rich output stays in the CLI.)
"""
from __future__ import annotations

import copy

import torch
from mmengine.hooks import Hook

from ssld_zoo.distill.distiller import unwrap

__all__ = ["EpochSeedHook", "TeacherOnceHook", "StudentEMAHook"]


class EpochSeedHook(Hook):
    """Reseeds torch's generators at the start of every training epoch from (seed, epoch, rank).

    In-model randomness (dropout, stochastic depth) then depends only on where training is, not
    on what ran before (validation and data-loader start-up also draw from the global
    generator), so a run resumed from an epoch checkpoint continues exactly as an uninterrupted
    one. Augmentations are seeded per sample from (seed, epoch, index) by the dataset."""

    priority = "VERY_HIGH"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def before_train_epoch(self, runner) -> None:
        from mmengine.dist import get_rank
        from ssld_zoo.distill.data import sample_seed
        s = sample_seed(self.seed, runner.epoch, get_rank(), stream=1)
        torch.manual_seed(s)  # seeds CUDA generators too


class TeacherOnceHook(Hook):
    """The teacher's accuracy is a constant: evaluate it on the first validation only."""

    def after_val_epoch(self, runner, metrics=None) -> None:
        unwrap(runner.model).eval_teacher = False


class StudentEMAHook(Hook):
    """An exponential moving average of the student's weights (not the teacher's: it is frozen).

    ``ema = (1 - momentum) * ema + momentum * student`` after every step (from ``begin_iter``
    on); buffers (BatchNorm statistics) are copied. Validation and export use the EMA weights;
    checkpoints store them under ``ema_student`` (tensors only)."""

    priority = "NORMAL"

    def __init__(self, momentum: float = 2e-4, begin_iter: int = 0):
        if not 0 < momentum < 1:
            raise ValueError(f"ema momentum must be in (0, 1), got {momentum}")
        self.momentum = momentum
        self.begin_iter = begin_iter
        self.ema: torch.nn.Module | None = None

    def before_run(self, runner) -> None:
        student = unwrap(runner.model).student
        self.ema = copy.deepcopy(student).eval().requires_grad_(False)

    @torch.no_grad()
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if outputs is None:  # a skipped step (no readable image): the student did not change
            return
        student = unwrap(runner.model).student
        m = 1.0 if runner.iter < self.begin_iter else self.momentum
        ema_p = [p for p in self.ema.parameters()]
        src_p = [p.detach() for p in student.parameters()]
        torch._foreach_lerp_(ema_p, src_p, m)
        for e, s in zip(self.ema.buffers(), student.buffers()):
            e.copy_(s)

    def _swap(self, runner) -> None:
        student = unwrap(runner.model).student
        for p, e in zip(student.parameters(), self.ema.parameters()):
            tmp = p.data.clone()
            p.data.copy_(e.data)
            e.data.copy_(tmp)

    def before_val_epoch(self, runner) -> None:
        self._swap(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._swap(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["ema_student"] = self.ema.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if "ema_student" in checkpoint and self.ema is not None:
            self.ema.load_state_dict(checkpoint["ema_student"])

    def state_for_export(self) -> dict[str, torch.Tensor]:
        """The EMA student's state dict (what export writes)."""
        return self.ema.state_dict()
