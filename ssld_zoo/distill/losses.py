"""Distillation losses on (student logits, teacher logits), in a small registry.

Every loss takes ``(student, teacher, labels=None)`` logits of shape ``(N, C)`` and returns a
scalar averaged over the batch. They compute in float32 whatever the autocast dtype, because
log-probabilities of 1,000 classes in bf16 lose the small terms that distillation lives on.

* ``SymmetricKL``: the SSLD loss, (KL(s||t) + KL(t||s)) / 2 on softmax outputs at temperature 1,
  summed over classes, averaged over the batch, with eps 1e-12 inside the logs as PaddleClas's
  ``ppcls/loss/dmlloss.py`` (``DMLLoss``; the SSLD docs call it "JS"). No labels.
* ``KL``: Hinton et al. 2015, KL(t||s) at temperature T, scaled by T^2.
* ``JSD``: the true Jensen-Shannon divergence, (KL(s||m) + KL(t||m)) / 2 with m = (s + t) / 2.
* ``SoftTargetCE``: cross-entropy against the teacher's probabilities (PP-HGNetV2's SSLD configs).
* ``PseudoLabelCE``: cross-entropy against the teacher's arg-max (hard pseudo-labels): what is
  left of distillation when the dark knowledge is thrown away (the ablations' "hard labels").
* ``DKD``: decoupled KD (Zhao et al. 2022); the target class is the label when given, else the
  teacher's arg-max, so that it too runs label-free.
* ``DIST``: Huang et al. 2022, inter- and intra-class Pearson correlation of probabilities.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

__all__ = [
    "LOSSES",
    "register_loss",
    "build_loss",
    "linear_in_teacher",
    "SymmetricKL",
    "KL",
    "JSD",
    "SoftTargetCE",
    "PseudoLabelCE",
    "DKD",
    "DIST",
]

LOSSES: dict[str, type[nn.Module]] = {}


def register_loss(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` buildable by name in recipes (``loss=dict(type=NAME)``),
    and register it in mmengine's ``MODELS`` under its own name."""
    LOSSES[cls.__name__] = cls
    return MODELS.register_module(module=cls)


def build_loss(cfg: dict | str) -> nn.Module:
    """Build a loss from ``dict(type=NAME, **params)`` or a bare name; errors list what is valid."""
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop("type", None)
    if name not in LOSSES:
        raise KeyError(
            f"unknown distillation loss {name!r}; valid losses: {', '.join(sorted(LOSSES))}"
        )
    cls = LOSSES[name]
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = sorted(set(cfg) - set(params))
    if bad:
        raise KeyError(
            f"loss {name}: unknown parameter(s) {', '.join(bad)}; "
            f"valid: {', '.join(params) or '(none)'}"
        )
    return cls(**cfg)


def linear_in_teacher(cfg: dict | str) -> bool:
    """Whether a loss's gradient is linear in the teacher's probabilities (KL and soft-target
    cross-entropy at temperature 1): only those stay unbiased when the teacher's distribution is
    replaced by an unbiased sample of it (a ``sampled`` teacher cache)."""
    cfg = {"type": cfg} if isinstance(cfg, str) else dict(cfg)
    return cfg.get("type") in ("KL", "SoftTargetCE") and cfg.get("temperature", 1.0) == 1.0


def _f32(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.float() for x in xs]


@register_loss
class SymmetricKL(nn.Module):
    """SSLD's loss: ``mean_n sum_c [t log((t+eps)/(s+eps)) + s log((s+eps)/(t+eps))] / 2``
    with ``s, t`` the softmax probabilities at temperature 1 (PaddleClas ``DMLLoss``)."""

    def __init__(self, eps: float = 1e-12):
        super().__init__()
        self.eps = eps

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        student, teacher = _f32(student, teacher)
        s, t = student.softmax(-1), teacher.softmax(-1)
        # log((a+eps)/(b+eps)) as a difference of logs: same value, no 0/0 division.
        ls, lt = (s + self.eps).log(), (t + self.eps).log()
        kl_ts = (t * (lt - ls)).sum(-1)
        kl_st = (s * (ls - lt)).sum(-1)
        return ((kl_ts + kl_st) / 2).mean()


class _Tempered(nn.Module):
    """A loss between the student's and the teacher's distributions at temperature ``T``."""

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def log_probs(
        self, student: torch.Tensor, teacher: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``log softmax(s / T), log softmax(t / T)`` in float32."""
        student, teacher = _f32(student, teacher)
        T = self.temperature
        return F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1)


@register_loss
class KL(_Tempered):
    """``T^2 * mean_n KL(softmax(t/T) || softmax(s/T))`` (Hinton et al. 2015)."""

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        log_s, log_t = self.log_probs(student, teacher)
        T = self.temperature
        return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * T * T


@register_loss
class JSD(_Tempered):
    """Jensen-Shannon divergence ``(KL(s||m) + KL(t||m)) / 2``, ``m = (s+t)/2``, in nats."""

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        log_s, log_t = self.log_probs(student, teacher)
        # log m = log((e^log_s + e^log_t) / 2), computed stably.
        log_m = torch.logsumexp(torch.stack([log_s, log_t]), 0) - torch.log(torch.tensor(2.0))
        kl_s = (log_s.exp() * (log_s - log_m)).sum(-1)
        kl_t = (log_t.exp() * (log_t - log_m)).sum(-1)
        return ((kl_s + kl_t) / 2).mean()


@register_loss
class SoftTargetCE(_Tempered):
    """``mean_n -sum_c softmax(t/T) log softmax(s/T)``, times ``T^2`` when T != 1."""

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        log_s, log_t = self.log_probs(student, teacher)
        T = self.temperature
        return -(log_t.exp() * log_s).sum(-1).mean() * T * T


@register_loss
class PseudoLabelCE(nn.Module):
    """``mean_n -log softmax(s)[argmax t]``: cross-entropy on the teacher's hard decision, with
    no human label (``labels`` is ignored)."""

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        student, teacher = _f32(student, teacher)
        return F.cross_entropy(student, teacher.argmax(-1))


@register_loss
class DKD(nn.Module):
    """Decoupled KD: ``alpha * TCKD + beta * NCKD`` at temperature T (Zhao et al., CVPR 2022).

    The target class is ``labels`` where given (>= 0), else the teacher's arg-max."""

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0):
        super().__init__()
        self.alpha, self.beta, self.temperature = alpha, beta, temperature

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        student, teacher = _f32(student, teacher)
        T = self.temperature
        target = teacher.argmax(-1)
        if labels is not None:
            target = torch.where(labels >= 0, labels, target)
        gt = F.one_hot(target, student.shape[-1]).bool()
        p_s, p_t = (student / T).softmax(-1), (teacher / T).softmax(-1)
        # Target-class KD: binary distributions (target, everything else).
        b_s = torch.stack([p_s[gt], (p_s * ~gt).sum(-1)], -1).clamp_min(1e-12)
        b_t = torch.stack([p_t[gt], (p_t * ~gt).sum(-1)], -1).clamp_min(1e-12)
        tckd = (b_t * (b_t.log() - b_s.log())).sum(-1).mean() * T * T
        # Non-target KD: distributions over the other classes only (target logit masked out).
        log_s = F.log_softmax(student / T - 1000.0 * gt, -1)
        log_t = F.log_softmax(teacher / T - 1000.0 * gt, -1)
        nckd = (log_t.exp() * (log_t - log_s)).sum(-1).mean() * T * T
        return self.alpha * tckd + self.beta * nckd


def _pearson_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 - pearson(a_i, b_i)`` for each row i, averaged."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    corr = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)
    return (1 - corr).mean()


@register_loss
class DIST(nn.Module):
    """DIST (Huang et al., NeurIPS 2022): ``tau^2 * (beta * inter + gamma * intra)`` where inter
    is 1 - Pearson correlation of each sample's class probabilities and intra that of each
    class's probabilities across the batch."""

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0):
        super().__init__()
        self.beta, self.gamma, self.temperature = beta, gamma, temperature

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        student, teacher = _f32(student, teacher)
        T = self.temperature
        p_s, p_t = (student / T).softmax(-1), (teacher / T).softmax(-1)
        inter = _pearson_distance(p_s, p_t)
        intra = _pearson_distance(p_s.t(), p_t.t())
        return T * T * (self.beta * inter + self.gamma * intra)
