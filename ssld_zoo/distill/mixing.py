"""Mixup / CutMix of a whole batch, seen by both models ("function matching", Beyer et al.
CVPR 2022: teacher and student on the same mixed image, so the student learns the teacher's
function away from the training images and does not overfit fixed targets on long runs).

With an online teacher the teacher simply runs on the mixed batch. With a teacher cache the
stored outputs belong to the unmixed views, so they are mixed in the same proportions
(:func:`mix_probs`): an approximation the docs discuss (docs/distillation.md, "Fast
distillation").
"""

from __future__ import annotations

import math

import torch

__all__ = ["BatchMix", "mix_probs"]


class BatchMix:
    """Mix each batch with a shuffled copy of itself.

    Args:
        mixup_alpha: Beta(alpha, alpha) of mixup's blending weight; 0 turns mixup off.
        cutmix_alpha: Beta(alpha, alpha) of CutMix's kept area; 0 turns CutMix off.
        prob: probability that a batch is mixed at all.
        switch_prob: with both on, probability of CutMix rather than mixup for a batch.

    Draws come from torch's global generator, which the runner seeds, so a run replays.
    Calling returns ``(mixed, perm, lam)``: sample ``i`` is ``lam`` parts sample ``i`` and
    ``1 - lam`` parts sample ``perm[i]`` (for CutMix, ``lam`` is the area actually kept).
    """

    def __init__(
        self,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
    ):
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or value < 0
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name}={value!r}: expected a number >= 0")
        for name, value in (("prob", prob), ("switch_prob", switch_prob)):
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not 0 <= value <= 1
            ):
                raise ValueError(f"{name}={value!r}: expected a number in [0, 1]")
        if mixup_alpha == 0 and cutmix_alpha == 0:
            raise ValueError(
                "mixup_alpha and cutmix_alpha are both 0: nothing to mix "
                "(set data.mix=None to turn mixing off)"
            )
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)

    def __repr__(self) -> str:
        return (
            f"BatchMix(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
            f"prob={self.prob}, switch_prob={self.switch_prob})"
        )

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        if float(torch.rand(())) >= self.prob or x.shape[0] < 2:
            return x, None, 1.0
        perm = torch.randperm(x.shape[0], device=x.device)
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha == 0 or float(torch.rand(())) < self.switch_prob
        )
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        if not use_cutmix:
            return x.mul(lam).add_(x[perm], alpha=1 - lam), perm, lam
        h, w = x.shape[-2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        mixed = x.clone()
        mixed[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the box is clipped at the border
        return mixed, perm, lam


def mix_probs(p: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """Teacher probabilities of a mixed batch, from those of its unmixed samples."""
    return p.mul(lam).add_(p[perm], alpha=1 - lam)
