"""The distillation model: a frozen zoo teacher and a trainable zoo student (an mmengine model).

``Distiller(teacher=..., student=..., loss=...)`` runs the teacher without autograd on every
batch and trains the student to match it. With ``teacher=None`` it trains the student on labels
alone (the supervised baselines of the demo and of the reproduction use the same engine).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel

from ssld_zoo.distill.losses import build_loss
from ssld_zoo.registry import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["Distiller", "DistillPreprocessor", "NonFiniteLossError", "build_zoo_model"]

_BN_MODES = ("train", "eval")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; raised before the optimiser step, so the weights (and
    every checkpoint written so far) stay the last good ones."""


class DistillPreprocessor(BaseDataPreprocessor):
    """Moves a batch to the device, turns uint8 images into normalised floats there, and
    optionally makes them channels-last (faster convolutions with AMP on recent GPUs)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, channels_last: bool = False):
        super().__init__(non_blocking=True)
        # Not persistent: they are settings of the recipe, not weights of the student.
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.channels_last = channels_last

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(dict(data))
        x = data["inputs"]
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        data["inputs"] = x
        return data


def build_zoo_model(name: str, weights: str | None = None, pretrained: bool = False,
                    num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """A zoo model by name, from scratch, from its published weights or from a weights file
    (an exported student's card tells :func:`ssld_zoo.load` its number of classes)."""
    from ssld_zoo.api import load
    if weights is not None:
        return load(name, weights=weights, num_classes=num_classes, **kwargs)
    return load(name, pretrained=pretrained, num_classes=num_classes, **kwargs)


def _set_bn_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class Distiller(BaseModel):
    """Teacher -> student distillation as an mmengine model.

    Args:
        student: ``dict(name=, weights=None, pretrained=False, num_classes=None,
            bn_mode='train', kwargs={})``: the zoo model to train (``bn_mode='eval'`` freezes
            its BatchNorm statistics, e.g. for fine-tuning with tiny per-GPU batches).
        teacher: ``dict(name=, weights=None, pretrained=True, num_classes=None,
            bn_mode='eval', kwargs={})``, or None for label-only training. The teacher is
            frozen and run under ``torch.no_grad``; ``bn_mode='train'`` normalises with batch
            statistics (the SSLD paper: 76.00 vs 75.84 for MobileNetV3_large).
        loss: the distillation loss, ``dict(type='SymmetricKL', ...)`` (see ``losses.LOSSES``).
        loss_weight: its weight.
        hard_label_weight: weight of cross-entropy on labeled samples (label -1 = unlabeled);
            0 by default: SSLD needs no labels.
        data_preprocessor: a :class:`DistillPreprocessor` or its config.
    """

    def __init__(self, student: dict, teacher: dict | None = None,
                 loss: dict | str = "SymmetricKL", loss_weight: float = 1.0,
                 hard_label_weight: float = 0.0,
                 data_preprocessor: dict | nn.Module | None = None):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = DistillPreprocessor(**data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor or DistillPreprocessor())
        student, teacher = dict(student), (dict(teacher) if teacher else None)
        self.student_bn = student.pop("bn_mode", "train")
        self.teacher_bn = teacher.pop("bn_mode", "eval") if teacher else "eval"
        for what, mode in (("student", self.student_bn), ("teacher", self.teacher_bn)):
            if mode not in _BN_MODES:
                raise ValueError(f"{what}.bn_mode={mode!r}: expected one of {_BN_MODES}")
        if teacher is None and hard_label_weight <= 0:
            raise ValueError("without a teacher the only loss is hard-label cross-entropy: "
                             "set hard_label_weight > 0 (or give a teacher)")
        self.teacher: nn.Module | None = None
        if teacher is not None:
            teacher.setdefault("pretrained", True)
            t = build_zoo_model(**{k: v for k, v in teacher.items() if k != "kwargs"},
                                **teacher.get("kwargs", {}))
            for p in t.parameters():
                p.requires_grad_(False)
            self.teacher = t
        s_cfg = {k: v for k, v in student.items() if k != "kwargs"}
        if s_cfg.get("num_classes") is None and self.teacher is not None:
            # The student predicts the teacher's classes unless told otherwise.
            s_cfg["num_classes"] = self.teacher.num_classes
        self.student = build_zoo_model(**s_cfg, **student.get("kwargs", {}))
        if self.teacher is not None and self.student.num_classes != self.teacher.num_classes:
            raise ValueError(f"student has {self.student.num_classes} classes but the teacher "
                             f"{self.teacher.num_classes}: they must predict the same classes")
        if getattr(self.data_preprocessor, "channels_last", False):
            self.student.to(memory_format=torch.channels_last)
            if self.teacher is not None:
                self.teacher.to(memory_format=torch.channels_last)
        self.criterion = build_loss(loss) if self.teacher is not None else None
        self.loss_weight = float(loss_weight)
        self.hard_label_weight = float(hard_label_weight)
        self.eval_teacher = self.teacher is not None  # evaluate the teacher on the first val
        self.skipped_images = 0

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.train(mode and self.teacher_bn == "train")
        if mode and self.student_bn == "eval":
            _set_bn_eval(self.student)
        return self

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None,
                indices: torch.Tensor | None = None, skipped: int = 0,
                mode: str = "tensor") -> Any:
        if mode == "loss":
            return self.loss(inputs, labels, skipped)
        if mode == "predict":
            return self.predict(inputs, labels)
        return self.student(inputs)

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor | None,
             skipped: int = 0) -> dict[str, torch.Tensor]:
        """The training losses of one batch (mmengine sums the entries whose key holds 'loss')."""
        self.skipped_images += int(skipped)
        logits = self.student(inputs)
        losses: dict[str, torch.Tensor] = {}
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(inputs)
            losses["loss_kd"] = self.loss_weight * self.criterion(logits, target, labels)
        if self.hard_label_weight > 0:
            losses["loss_ce"] = self.hard_label_weight * _labeled_ce(logits, labels)
        total = sum(losses.values())
        if not torch.isfinite(total.detach()):
            raise NonFiniteLossError(
                f"the loss became {total.item()} ({', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())}); "
                f"stopped before the optimiser step, so the checkpoints written so far are intact. "
                f"Lower the learning rate, lengthen the warm-up or use bf16 instead of fp16.")
        # Logged, not optimised (mmengine only adds up keys holding 'loss').
        losses["skipped_images"] = torch.tensor(float(self.skipped_images), device=logits.device)
        return losses

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, labels: torch.Tensor | None) -> list[dict]:
        """Student logits (and the teacher's, on the first validation) of one batch."""
        out = {"student": self.student(inputs).float(), "labels": labels}
        if self.eval_teacher and self.teacher is not None:
            out["teacher"] = self.teacher(inputs).float()
        return [out]


def _labeled_ce(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy averaged over the labeled samples of the batch (0 when there are none)."""
    if labels is None:
        return logits.sum() * 0.0
    mask = labels >= 0
    n = int(mask.sum())
    if n == 0:
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) alive
    return F.cross_entropy(logits[mask].float(), labels[mask])


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP/FSDP wrapper."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model
