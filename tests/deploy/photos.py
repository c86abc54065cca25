"""Real photos for the deploy tests, and random-weight models with real-photo statistics.

A random-init model's BatchNorms hold fresh statistics, so its activations shrink towards zero
and any int8 or bf16 form matches it trivially. Here every BatchNorm takes the statistics of
real photos instead (one batch through the model in training mode, cumulative average), which
puts the activations, and so the quantization ranges, at the scale trained weights have."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

import ssld_zoo
from ssld_zoo.registry import EvalTransform


def photo_batch(folder: Path, pattern: str, count: int, size: int, step: int = 1) -> torch.Tensor:
    """``count`` photos matching ``pattern`` under ``folder`` (every ``step``-th, sorted),
    resized and centre-cropped to ``size``, normalised."""
    from ssld_zoo.preprocess import decode_image as read_image

    paths = sorted(folder.glob(pattern))[::step][:count]
    assert len(paths) == count, f"{folder}/{pattern}: {len(paths)} photos, need {count}"
    transform = EvalTransform(input_size=size, resize=round(size / 0.875)).build()
    return torch.stack([transform(read_image(p)) for p in paths])


@torch.no_grad()
def photo_statistics_model(arch: str, photos: torch.Tensor, num_classes: int = 10) -> nn.Module:
    """``arch`` with random weights (seed 0) and the BatchNorm statistics of ``photos``."""
    torch.manual_seed(0)
    model = ssld_zoo.load(arch, pretrained=False, num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: exactly this batch's statistics
    model.train()
    model(photos)
    return model.eval()


def top1_agreement(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.argmax(-1) == want.argmax(-1)).float().mean())


def relative_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).abs().max() / want.abs().max())
