"""The distillation runner's own hook: evaluate the teacher once. (Seeding, EMA and the
per-epoch record are the shared engine's: :mod:`ssld_zoo.engine.hooks`.)"""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ssld_zoo.engine.hooks import unwrap

__all__ = ["TeacherOnceHook"]


@HOOKS.register_module()
class TeacherOnceHook(Hook):
    """The teacher's accuracy is a constant: evaluate it on the first validation only."""

    def after_val_epoch(self, runner, metrics=None) -> None:
        unwrap(runner.model).eval_teacher = False
