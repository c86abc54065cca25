"""Top-1 / top-5 accuracy of the trained network (and of a teacher, once) as an mmengine metric."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

__all__ = ["TopKAccuracy"]


def _correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    k = min(k, logits.shape[-1])
    top = logits.topk(k, -1).indices
    return int((top == labels[:, None]).any(-1).sum())


@METRICS.register_module()
class TopKAccuracy(BaseMetric):
    """``top1``/``top5`` (percent) of the outputs' ``logits``; ``teacher_top1``/``teacher_top5``
    when they also carry ``teacher_logits`` (a Distiller adds them on its first validation).

    Each processed batch stores counts, not logits, so memory does not grow with the val set;
    the validation sampler must not pad (``round_up=False``) so that no image counts twice.
    """

    default_prefix = ""  # metric keys stay top1/top5 (no "prefix/")

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for out in data_samples:
            labels = out["labels"]
            keep = labels >= 0
            labels = labels[keep]
            rec = {"n": int(keep.sum())}
            for who, key in (("student", "logits"), ("teacher", "teacher_logits")):
                if key in out:
                    logits = out[key][keep]
                    rec[f"{who}_1"] = _correct(logits, labels, 1)
                    rec[f"{who}_5"] = _correct(logits, labels, 5)
            self.results.append(rec)

    def compute_metrics(self, results: list) -> dict[str, float]:
        n = max(sum(r["n"] for r in results), 1)
        metrics = {
            "top1": 100.0 * sum(r["student_1"] for r in results) / n,
            "top5": 100.0 * sum(r["student_5"] for r in results) / n,
        }
        if results and all("teacher_1" in r for r in results):
            metrics["teacher_top1"] = 100.0 * sum(r["teacher_1"] for r in results) / n
            metrics["teacher_top5"] = 100.0 * sum(r["teacher_5"] for r in results) / n
        return metrics
