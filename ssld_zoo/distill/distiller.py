"""The distillation model: a frozen teacher and a trainable student, from anywhere (an mmengine
model, registered as ``Distiller``).

``Distiller(teacher=..., student=..., loss=...)`` runs the teacher without autograd on every
batch and trains the student to match it. Teacher and student are any classifiers
:func:`~ssld_zoo.engine.models.build_classifier` builds (a zoo name, timm, torchvision, an
importable builder), each seeing the batch through its own :class:`~ssld_zoo.engine.models.
ModelInput` (its own mean, std and input size). With ``teacher=None`` it trains the student on
labels alone (the supervised baselines of the demo and of the reproduction use the same engine).
With ``teacher_cache`` the teacher's outputs come with the batch, read from a cache
(:mod:`ssld_zoo.distill.cache`), and no teacher is built at all.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from ssld_zoo.distill.cache.format import dense_log_probs, log_probs
from ssld_zoo.distill.class_map import resolve_class_map
from ssld_zoo.distill.losses import build_loss
from ssld_zoo.engine.models import (
    ModelInput,
    build_classifier,
    default_input,
    model_spec,
    num_classes_of,
)
from ssld_zoo.engine.preprocessor import NonFiniteLossError, UInt8Preprocessor

__all__ = ["Distiller", "NonFiniteLossError", "build_teacher_model", "split_model_spec", "RUN_KEYS"]

_BN_MODES = ("train", "eval")
# Keys of a teacher or student spec that say how it runs, not which model it is: popped before
# the model is built. mean/std/input_size: how it sees images (default: its weights' own).
RUN_KEYS = (
    "bn_mode",
    "precision",
    "fold_bn",
    "channels_last",
    "compile",
    "mean",
    "std",
    "input_size",
    "class_map",
)


def split_model_spec(spec: str | dict) -> tuple[dict, dict]:
    """``(model config, run settings)`` of a teacher or student spec."""
    spec = model_spec(spec)
    return (
        {k: v for k, v in spec.items() if k not in RUN_KEYS},
        {k: v for k, v in spec.items() if k in RUN_KEYS},
    )


def build_teacher_model(spec: str | dict) -> nn.Module:
    """The frozen (no gradients, eval mode) model a teacher spec names."""
    model_cfg, _ = split_model_spec(spec)
    if model_cfg["type"] == "ZooModel":
        model_cfg.setdefault("pretrained", True)
    return build_classifier(model_cfg).eval().requires_grad_(False)


def model_input(model: nn.Module, run: dict, shared: dict) -> ModelInput:
    """How ``model`` sees a batch: the spec's mean/std/input_size, else the Distiller's shared
    ones, else its weights' own (:func:`~ssld_zoo.engine.models.default_input`)."""
    own = default_input(model)
    pick = {k: run.get(k, shared.get(k)) for k in ("mean", "std", "input_size")}
    return ModelInput(
        pick["mean"] if pick["mean"] is not None else own["mean"],
        pick["std"] if pick["std"] is not None else own["std"],
        pick["input_size"] if pick["input_size"] is not None else own["input_size"],
    )


def _set_bn_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@MODELS.register_module()
class Distiller(BaseModel):
    """Teacher -> student distillation as an mmengine model.

    Args:
        student: the model to train: ``dict(type='ZooModel', name=..., pretrained=False)``,
            ``dict(type='TimmModel', name=...)``, ``dict(type='TorchvisionModel', name=...)``,
            ``dict(type='ImportedModel', builder='pkg.mod:fn', ...)`` or a string for short
            (:mod:`ssld_zoo.engine.models`), plus how it runs: ``bn_mode='train'`` (``'eval'``
            freezes its BatchNorm statistics), ``mean``, ``std``, ``input_size``.
        teacher: the same for the frozen teacher (a zoo teacher defaults to its published
            weights), or None for label-only training, plus ``bn_mode='eval'`` (``'train'``
            normalises with batch statistics: the SSLD paper's 76.00 vs 75.84 for
            MobileNetV3_large), the fast-teacher levers ``precision``, ``fold_bn``,
            ``channels_last``, ``compile`` (:class:`~ssld_zoo.distill.teacher.OnlineTeacher`),
            and ``class_map``: when the teacher predicts a superset of the student's classes,
            the teacher class of each student class (a list of indices, or a text file of them,
            one a line); without it both must predict the same number of classes.
        loss: the distillation loss, ``dict(type='SymmetricKL', ...)`` (see ``losses.LOSSES``).
        loss_weight: its weight.
        hard_label_weight: weight of cross-entropy on labeled samples (label -1 = unlabeled);
            0 by default: SSLD needs no labels.
        mean, std, input_size: how both models see images unless their spec says otherwise
            (default: each its weights' own; e.g. CIFAR-10's statistics for both).
        data_preprocessor: a :class:`~ssld_zoo.engine.preprocessor.UInt8Preprocessor` or its
            config (uint8 to the device as [0, 1] floats).
        teacher_cache: the folder of a teacher cache (``ssld-zoo label``) the batches' teacher
            outputs (``teacher_ids``, ``teacher_logp``) come from; the teacher is not built.
        mix: ``dict(mixup_alpha=, cutmix_alpha=, prob=, switch_prob=)``: mix each batch before
            both models see it; cached teacher outputs are mixed in the same proportions.
    """

    def __init__(
        self,
        student: str | dict,
        teacher: str | dict | None = None,
        loss: dict | str = "SymmetricKL",
        loss_weight: float = 1.0,
        hard_label_weight: float = 0.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_size: int | None = None,
        data_preprocessor: dict | nn.Module | None = None,
        teacher_cache: str | None = None,
        mix: dict | None = None,
    ):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build({"type": "UInt8Preprocessor", **data_preprocessor})
        super().__init__(data_preprocessor=data_preprocessor or UInt8Preprocessor())
        shared = dict(mean=mean, std=std, input_size=input_size)
        student_cfg, student_run = split_model_spec(student)
        teacher_run = split_model_spec(teacher)[1] if teacher is not None else {}
        self.student_bn = student_run.get("bn_mode", "train")
        self.teacher_bn = teacher_run.get("bn_mode", "eval")
        for what, mode in (("student", self.student_bn), ("teacher", self.teacher_bn)):
            if mode not in _BN_MODES:
                raise ValueError(f"{what}.bn_mode={mode!r}: expected one of {_BN_MODES}")
        if teacher is None and hard_label_weight <= 0:
            raise ValueError(
                "without a teacher the only loss is hard-label cross-entropy: "
                "set hard_label_weight > 0 (or give a teacher)"
            )
        channels_last = bool(getattr(self.data_preprocessor, "channels_last", False))
        self.teacher: nn.Module | None = None
        self.teacher_input: ModelInput | None = None
        self.cache = None
        teacher_classes = None
        if teacher is not None and teacher_cache:
            from ssld_zoo.distill.cache.format import TeacherCache

            spec = TeacherCache(teacher_cache).spec
            self.cache = {"kind": spec.kind, "num_classes": spec.num_classes}
            teacher_classes = spec.num_classes
        elif teacher is not None:
            from ssld_zoo.distill.teacher import OnlineTeacher

            model = build_teacher_model(teacher)
            self.teacher_input = model_input(model, teacher_run, shared)
            teacher_classes = num_classes_of(model, self.teacher_input.input_size or 224)
            self.teacher = OnlineTeacher(
                model,
                precision=teacher_run.get("precision", "auto"),
                fold_bn=teacher_run.get("fold_bn", True),
                channels_last=teacher_run.get("channels_last", True),
                compile=teacher_run.get("compile", False),
                bn_mode=self.teacher_bn,
                probe_size=self.teacher_input.input_size or 224,
            )
        self.class_map = None
        if teacher_run.get("class_map") is not None and self.teacher is not None:
            # (a cache already holds the mapped classes)
            self.register_buffer(
                "class_map", _class_map(teacher_run["class_map"], teacher_classes), persistent=False
            )
            teacher_classes = len(self.class_map)
        if (
            student_cfg.get("num_classes") is None
            and teacher_classes is not None
            and _takes_num_classes(student_cfg)
        ):
            # The student predicts the teacher's (mapped) classes unless told otherwise.
            student_cfg["num_classes"] = teacher_classes
        self.student = build_classifier(student_cfg)
        self.student_input = model_input(self.student, student_run, shared)
        self.num_classes = num_classes_of(self.student, self.student_input.input_size or 224)
        if teacher_classes is not None and self.num_classes != teacher_classes:
            raise ValueError(
                f"the student predicts {self.num_classes} classes but the teacher "
                f"{teacher_classes}: give the teacher a class_map (the teacher "
                f"class of each student class) or a student with "
                f"{teacher_classes} classes"
            )
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

    def forward(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
        skipped: int = 0,
        teacher_ids: torch.Tensor | None = None,
        teacher_logp: torch.Tensor | None = None,
        mode: str = "tensor",
    ) -> Any:
        if mode == "loss":
            return self.loss(inputs, labels, skipped, teacher_ids, teacher_logp)
        if mode == "predict":
            return self.predict(inputs, labels)
        return self.student(self.student_input(inputs))

    def loss(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor | None,
        skipped: int = 0,
        teacher_ids: torch.Tensor | None = None,
        teacher_logp: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The training losses of one batch (mmengine sums the entries whose key holds 'loss')."""
        self.skipped_images += int(skipped)
        perm, lam = None, 1.0
        if self.mix is not None:
            inputs, perm, lam = self.mix(inputs)
        logits = self.student(self.student_input(inputs))
        losses: dict[str, torch.Tensor] = {}
        if self.has_teacher:
            target = self._teacher_target(inputs, teacher_ids, teacher_logp, perm, lam)
            losses["loss_kd"] = self.loss_weight * self.criterion(logits, target, labels)
        if self.hard_label_weight > 0:
            ce = _labeled_ce(logits, labels)
            if perm is not None and lam < 1.0:
                ce = lam * ce + (1 - lam) * _labeled_ce(
                    logits, None if labels is None else labels[perm]
                )
            losses["loss_ce"] = self.hard_label_weight * ce
        total = sum(losses.values())
        if not torch.isfinite(total.detach()):
            raise NonFiniteLossError(
                f"the loss became {total.item()} "
                f"({', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())}); "
                f"stopped before the optimiser step, so the checkpoints written so far are intact. "
                f"Lower the learning rate, lengthen the warm-up or use bf16 instead of fp16."
            )
        # Logged, not optimised (mmengine only adds up keys holding 'loss').
        losses["skipped_images"] = torch.tensor(float(self.skipped_images), device=logits.device)
        losses["skipped_batches"] = torch.tensor(float(self.skipped_batches), device=logits.device)
        return losses

    def _teacher_target(
        self,
        inputs: torch.Tensor,
        ids: torch.Tensor | None,
        logp: torch.Tensor | None,
        perm: torch.Tensor | None,
        lam: float,
    ) -> torch.Tensor:
        """Teacher logits (float32) for the batch: online on the (mixed) images, or rebuilt
        from the cached outputs (log-probabilities, mixed linearly like the images)."""
        if self.cache is None:
            logits = self.teacher(self.teacher_input(inputs))
            return logits if self.class_map is None else logits.index_select(1, self.class_map)
        if ids is None or logp is None:
            raise ValueError(
                "this Distiller trains from a teacher cache, but the batch has no "
                "teacher_ids/teacher_logp (use the cache's data loader)"
            )
        target = dense_log_probs(ids, logp, self.cache["num_classes"], self.cache["kind"])
        if perm is not None and lam < 1.0:
            from ssld_zoo.distill.mixing import mix_probs

            target = log_probs(mix_probs(target.exp(), perm, lam))
        return target

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, labels: torch.Tensor | None) -> list[dict]:
        """Student logits (and the teacher's, on the first validation) of one batch."""
        out = {"logits": self.student(self.student_input(inputs)).float(), "labels": labels}
        if self.eval_teacher and self.teacher is not None:
            out["teacher_logits"] = self._teacher_target(inputs, None, None, None, 1.0)
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


def _class_map(class_map: Sequence[int | str] | str, teacher_classes: int) -> torch.Tensor:
    """The teacher class of each student class (:mod:`~ssld_zoo.distill.class_map`), checked
    against the teacher's classes."""
    return torch.tensor(resolve_class_map(class_map, teacher_classes), dtype=torch.long)


def _takes_num_classes(model_cfg: dict) -> bool:
    """Whether the builder of ``model_cfg`` accepts ``num_classes`` (an imported builder may
    not: then the student's own output width must already match)."""
    if model_cfg["type"] != "ImportedModel":
        return True
    import inspect

    module, _, attr = str(model_cfg.get("builder", "")).partition(":")
    try:
        import importlib

        fn = getattr(importlib.import_module(module), attr)
        params = inspect.signature(fn).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return False
    return "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
