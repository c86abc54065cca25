"""How far a teacher cache's rebuilt targets move SSLD's gradient from the online teacher's.

    .venv/bin/python benchmarks/cache_fidelity.py [--classes 10] [--rows 4096]

For teachers of rising confidence (logits ``randn * scale``), it stores the teacher's output as
the cache does (``_targets``, float16) and as format 2 did (float16 probabilities, the dropped
classes' mass taken as ``1 - sum``), rebuilds the dense targets and prints, per K, the relative
error ``|g_cache - g_online| / |g_online|`` of the symmetric KL's gradient with respect to the
student's logits, for a student that disagrees with the teacher (random logits: early training)
and one close to it (late training). No training, a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def format2_targets(teacher: torch.Tensor, k: int) -> torch.Tensor:
    """Teacher log-probabilities as format 2 rebuilt them: float16 top-k probabilities, the
    rest ``1 - sum`` spread evenly, a zero mass read as ``LOG_ZERO``."""
    from ssld_zoo.distill.cache.format import log_probs

    probs, ids = teacher.softmax(-1).topk(k)
    probs = probs.half().float()
    n, c = teacher.shape
    rest = (1 - probs.sum(-1, keepdim=True)).clamp_min(0)
    return log_probs((rest / max(c - k, 1)).expand(n, c).clone().scatter_(1, ids, probs))


def format3_targets(teacher: torch.Tensor, k: int) -> torch.Tensor:
    """Teacher log-probabilities rebuilt from what the cache stores today (float16)."""
    from ssld_zoo.distill.cache.build import _targets
    from ssld_zoo.distill.cache.format import dense_log_probs

    ids, logp, _ = _targets(teacher, k, "topk", torch.Generator())
    return dense_log_probs(ids, logp.half(), teacher.shape[1])


def grad_error(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor) -> float:
    from ssld_zoo.distill.losses import SymmetricKL

    grads = []
    for t in (teacher, target):
        s = student.clone().requires_grad_()
        SymmetricKL()(s, t).backward()
        grads.append(s.grad)
    return ((grads[1] - grads[0]).norm() / grads[0].norm()).item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--rows", type=int, default=4096)
    args = p.parse_args(argv)
    c = args.classes
    ks = sorted({max(1, c // 2), max(1, c - 2), c})
    print(
        "| teacher logit scale | mean top-1 prob | student | "
        + " | ".join(f"K={k} format 2 | K={k} format 3" for k in ks)
        + " |"
    )
    print("|---|---|---|" + "---|---|" * len(ks))
    for scale in (2, 4, 8):
        torch.manual_seed(0)
        teacher = torch.randn(args.rows, c) * scale
        students = {
            "random": torch.randn(args.rows, c),
            "near the teacher": teacher * 0.7 + torch.randn(args.rows, c),
        }
        top1 = teacher.softmax(-1).max(-1).values.mean().item()
        for name, student in students.items():
            cells = []
            for k in ks:
                for rebuild in (format2_targets, format3_targets):
                    cells.append(f"{grad_error(student, teacher, rebuild(teacher, k)):.3f}")
            print(f"| {scale} | {top1:.3f} | {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
