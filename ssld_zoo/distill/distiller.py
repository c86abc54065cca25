"""The distillation model: a frozen zoo teacher and a trainable zoo student (an mmengine model).

``Distiller(teacher=..., student=..., loss=...)`` runs the teacher without autograd on every
batch and trains the student to match it. With ``teacher=None`` it trains the student on labels
alone (the supervised baselines of the demo and of the reproduction use the same engine). With
``teacher_cache`` the teacher's outputs come with the batch, read from a cache
(:mod:`ssld_zoo.distill.cache`), and no teacher is built at all.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel

from ssld_zoo.distill.cache.format import dense_probs, log_probs
from ssld_zoo.distill.losses import build_loss
from ssld_zoo.registry import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["Distiller", "DistillPreprocessor", "NonFiniteLossError", "build_zoo_model",
           "build_teacher_model"]

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


# Keys of a recipe's teacher section that configure how it runs, not which model it is.
_TEACHER_RUN_KEYS = ("kwargs", "bn_mode", "precision", "fold_bn", "channels_last", "compile")


def build_teacher_model(teacher: dict) -> nn.Module:
    """The frozen (no gradients, eval mode) zoo model a recipe's teacher section names."""
    teacher = dict(teacher)
    teacher.setdefault("pretrained", True)
    t = build_zoo_model(**{k: v for k, v in teacher.items() if k not in _TEACHER_RUN_KEYS},
                        **teacher.get("kwargs", {}))
    return t.eval().requires_grad_(False)


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
        teacher_cache: ``dict(kind=, num_classes=)`` of the cache the batches' teacher outputs
            (``teacher_ids``, ``teacher_probs``) come from; the teacher is then not built.
        mix: ``dict(mixup_alpha=, cutmix_alpha=, prob=, switch_prob=)``: mix each batch before
            both models see it; cached teacher outputs are mixed in the same proportions.

    The online teacher runs as an :class:`~ssld_zoo.distill.teacher.OnlineTeacher`
    (``precision``, ``fold_bn``, ``channels_last`` and ``compile`` of the teacher section).
    """

    def __init__(self, student: dict, teacher: dict | None = None,
                 loss: dict | str = "SymmetricKL", loss_weight: float = 1.0,
                 hard_label_weight: float = 0.0,
                 data_preprocessor: dict | nn.Module | None = None,
                 teacher_cache: dict | None = None, mix: dict | None = None):
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
        channels_last = bool(getattr(self.data_preprocessor, "channels_last", False))
        self.teacher: nn.Module | None = None
        self.cache = dict(teacher_cache) if teacher_cache else None
        teacher_classes = self.cache["num_classes"] if self.cache else None
        if teacher is not None and self.cache is None:
            from ssld_zoo.distill.teacher import OnlineTeacher
            model = build_teacher_model(teacher)
            teacher_classes = model.num_classes
            self.teacher = OnlineTeacher(model, precision=teacher.get("precision", "auto"),
                                         fold_bn=teacher.get("fold_bn", True),
                                         channels_last=teacher.get("channels_last", True),
                                         compile=teacher.get("compile", False),
                                         bn_mode=self.teacher_bn)
        s_cfg = {k: v for k, v in student.items() if k != "kwargs"}
        if s_cfg.get("num_classes") is None and teacher_classes is not None:
            # The student predicts the teacher's classes unless told otherwise.
            s_cfg["num_classes"] = teacher_classes
        self.student = build_zoo_model(**s_cfg, **student.get("kwargs", {}))
        if teacher_classes is not None and self.student.num_classes != teacher_classes:
            raise ValueError(f"student has {self.student.num_classes} classes but the teacher "
                             f"{teacher_classes}: they must predict the same classes")
        if channels_last:
            self.student.to(memory_format=torch.channels_last)
        self.has_teacher = teacher is not None
        self.criterion = build_loss(loss) if self.has_teacher else None
        self.mix = None
        if mix:
            from ssld_zoo.distill.mixing import BatchMix
            self.mix = BatchMix(**mix)
        self.loss_weight = float(loss_weight)
        self.hard_label_weight = float(hard_label_weight)
        self.eval_teacher = self.teacher is not None  # evaluate the teacher on the first val
        self.skipped_images = 0
        self.skipped_batches = 0  # steps with no readable image (see SkipEmptyBatchTrainLoop)

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.train(mode and self.teacher_bn == "train")
        if mode and self.student_bn == "eval":
            _set_bn_eval(self.student)
        return self

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None,
                indices: torch.Tensor | None = None, skipped: int = 0,
                teacher_ids: torch.Tensor | None = None,
                teacher_probs: torch.Tensor | None = None, mode: str = "tensor") -> Any:
        if mode == "loss":
            return self.loss(inputs, labels, skipped, teacher_ids, teacher_probs)
        if mode == "predict":
            return self.predict(inputs, labels)
        return self.student(inputs)

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor | None, skipped: int = 0,
             teacher_ids: torch.Tensor | None = None,
             teacher_probs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The training losses of one batch (mmengine sums the entries whose key holds 'loss')."""
        self.skipped_images += int(skipped)
        perm, lam = None, 1.0
        if self.mix is not None:
            inputs, perm, lam = self.mix(inputs)
        logits = self.student(inputs)
        losses: dict[str, torch.Tensor] = {}
        if self.has_teacher:
            target = self._teacher_target(inputs, teacher_ids, teacher_probs, perm, lam)
            losses["loss_kd"] = self.loss_weight * self.criterion(logits, target, labels)
        if self.hard_label_weight > 0:
            ce = _labeled_ce(logits, labels)
            if perm is not None and lam < 1.0:
                ce = lam * ce + (1 - lam) * _labeled_ce(logits, None if labels is None
                                                        else labels[perm])
            losses["loss_ce"] = self.hard_label_weight * ce
        total = sum(losses.values())
        if not torch.isfinite(total.detach()):
            raise NonFiniteLossError(
                f"the loss became {total.item()} ({', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())}); "
                f"stopped before the optimiser step, so the checkpoints written so far are intact. "
                f"Lower the learning rate, lengthen the warm-up or use bf16 instead of fp16.")
        # Logged, not optimised (mmengine only adds up keys holding 'loss').
        losses["skipped_images"] = torch.tensor(float(self.skipped_images), device=logits.device)
        losses["skipped_batches"] = torch.tensor(float(self.skipped_batches),
                                                 device=logits.device)
        return losses

    def _teacher_target(self, inputs: torch.Tensor, ids: torch.Tensor | None,
                        probs: torch.Tensor | None, perm: torch.Tensor | None,
                        lam: float) -> torch.Tensor:
        """Teacher logits (float32) for the batch: online on the (mixed) images, or rebuilt
        from the cached outputs (log-probabilities, mixed linearly like the images)."""
        if self.cache is None:
            return self.teacher(inputs)
        if ids is None or probs is None:
            raise ValueError("this Distiller trains from a teacher cache, but the batch has no "
                             "teacher_ids/teacher_probs (use the cache's data loader)")
        p = dense_probs(ids, probs, self.cache["num_classes"], self.cache["kind"])
        if perm is not None and lam < 1.0:
            from ssld_zoo.distill.mixing import mix_probs
            p = mix_probs(p, perm, lam)
        return log_probs(p)

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
