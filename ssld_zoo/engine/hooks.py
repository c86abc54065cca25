"""Hooks of the shared engine: per-epoch seeding, an EMA of the trained network, a record of
every epoch's metrics.

(The rich progress bar lives in ``ssld_zoo/cli/distill.py``: rich output stays in the CLI.)
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ["EpochSeedHook", "ModuleEMAHook", "HistoryHook", "find_hook", "unwrap"]

H = TypeVar("H", bound=Hook)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP/FSDP wrapper."""
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model


def find_hook(runner, kind: type[H]) -> H | None:
    """The runner's hook of type ``kind`` (e.g. :class:`ModuleEMAHook`, which export asks for), or
    None when the run has none."""
    return next((h for h in runner.hooks if isinstance(h, kind)), None)


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseeds torch's generators at the start of every training epoch from (the run's seed,
    ``randomness.seed``; epoch; rank).

    In-model randomness (dropout, stochastic depth) then depends only on where training is, not
    on what ran before (validation and data-loader start-up also draw from the global
    generator), so a run resumed from an epoch checkpoint continues exactly as an uninterrupted
    one. Augmentations are seeded per sample from (seed, epoch, index) by the dataset."""

    priority = "VERY_HIGH"

    def before_train_epoch(self, runner) -> None:
        from mmengine.dist import get_rank

        from ssld_zoo.data.images import sample_seed

        s = sample_seed(int(runner.seed), runner.epoch, get_rank(), stream=1)
        torch.manual_seed(s)  # seeds CUDA generators too


@HOOKS.register_module()
class ModuleEMAHook(Hook):
    """An exponential moving average of the trained network ``model.<module>`` (the student of
    a distillation, the classifier of a transfer; never a frozen teacher).

    ``ema = (1 - momentum) * ema + momentum * net`` after every step (from ``begin_iter`` on);
    buffers (BatchNorm statistics) are copied. Validation and export use the EMA weights
    (:meth:`state_for_export`; export finds the hook with :func:`find_hook`); checkpoints store
    them under ``ema_<module>`` (tensors only), so a resumed run continues the average."""

    priority = "NORMAL"

    def __init__(self, momentum: float = 2e-4, begin_iter: int = 0, module: str = "student"):
        if not 0 < momentum < 1:
            raise ValueError(f"ema momentum must be in (0, 1), got {momentum}")
        self.momentum = momentum
        self.begin_iter = begin_iter
        self.module = module
        self.ema: torch.nn.Module | None = None

    def _net(self, runner) -> torch.nn.Module:
        return getattr(unwrap(runner.model), self.module)

    def before_run(self, runner) -> None:
        self.ema = copy.deepcopy(self._net(runner)).eval().requires_grad_(False)

    @torch.no_grad()
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if outputs is None:  # a skipped step (no readable image): the network did not change
            return
        net = self._net(runner)
        m = 1.0 if runner.iter < self.begin_iter else self.momentum
        torch._foreach_lerp_(list(self.ema.parameters()), [p.detach() for p in net.parameters()], m)
        for e, s in zip(self.ema.buffers(), net.buffers()):
            e.copy_(s)

    def _swap(self, runner) -> None:
        for p, e in zip(self._net(runner).parameters(), self.ema.parameters()):
            tmp = p.data.clone()
            p.data.copy_(e.data)
            e.data.copy_(tmp)

    def before_val_epoch(self, runner) -> None:
        self._swap(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._swap(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[f"ema_{self.module}"] = self.ema.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if f"ema_{self.module}" in checkpoint and self.ema is not None:
            self.ema.load_state_dict(checkpoint[f"ema_{self.module}"])

    def state_for_export(self) -> dict[str, torch.Tensor]:
        """The averaged network's state dict (what export writes)."""
        return self.ema.state_dict()


@HOOKS.register_module()
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
                self.teacher[k[len("teacher_") :]] = float(v)
            else:
                row[k] = float(v)
