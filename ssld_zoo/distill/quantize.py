"""Label-free quantization-aware distillation: an int8 model distilled from its own fp32 model.

The fp32 model is the teacher; its fake-quantized copy (:func:`ssld_zoo.deploy.quantize.
prepare_qat`: int8 rounding simulated in the forward, straight-through gradients) is the
student, trained on any unlabeled images with SSLD's loss (:class:`~ssld_zoo.distill.losses.
SymmetricKL` by default) to reproduce the teacher's output distribution; then it is converted
to a real int8 model. This is what PaddleSlim's auto-compression does for PaddleClas's int8
models; no labels are needed because the target is the teacher, not the ground truth.

Schedule: SGD with momentum and a cosine-decayed learning rate; the quantization ranges
(observers) follow the data for the first ``observe_fraction`` of the steps and are frozen
after, so the last steps tune the weights to fixed int8 grids.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn

from ssld_zoo.deploy.quantize import convert, prepare_qat
from ssld_zoo.distill.losses import build_loss

__all__ = ["distill_quantized", "unlabeled_batches"]

log = logging.getLogger("ssld_zoo.distill")


def unlabeled_batches(
    paths: Sequence[str],
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    seed: int = 0,
) -> Iterator[torch.Tensor]:
    """Endless normalised float32 batches of random views (random-resized crop of 35-100% of
    the image, horizontal flip) of the images at ``paths``, reshuffled each pass."""
    from ssld_zoo.data.images import TrainViewTransform, read_image

    if not paths:
        raise ValueError("unlabeled_batches needs at least one image path")
    view = TrainViewTransform(input_size, scale=(0.35, 1.0))
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    g = torch.Generator().manual_seed(seed)
    size = min(batch_size, len(paths))
    while True:
        order = torch.randperm(len(paths), generator=g).tolist()
        served = 0
        for i in range(0, len(order) - size + 1, size):
            images = [read_image(paths[j]) for j in order[i : i + size]]
            views = [(view(im).float() / 255 - m) / s for im in images if im is not None]
            if len(views) >= 2:  # an unreadable file is skipped (read_image logs it)
                served += 1
                yield torch.stack(views)
        if not served:
            raise ValueError(
                f"none of the {len(paths)} unlabeled images could be read (first: {paths[0]})"
            )


def distill_quantized(
    model: nn.Module,
    batches: Iterator[torch.Tensor],
    steps: int,
    *,
    lr: float = 1e-3,
    loss: dict | str = "SymmetricKL",
    observe_fraction: float = 0.6,
    on_step: Callable[[int, float], None] | None = None,
) -> torch.fx.GraphModule:
    """Distil an int8 model from the eval-mode fp32 ``model`` (left unchanged) on unlabeled
    ``batches`` (normalised NCHW float32, batch of 2 or more) for ``steps`` steps; returns
    the converted int8 graph (run it with :func:`ssld_zoo.deploy.quantize.compile_int8` or
    save it with :func:`~ssld_zoo.deploy.quantize.save_int8`).

    Args:
        model: the fp32 model; a copy is the teacher, another the student.
        batches: an iterator of input batches, e.g. :func:`unlabeled_batches`.
        steps: optimisation steps (one batch each).
        lr: peak SGD learning rate (momentum 0.9, cosine decay to 0).
        loss: the distillation loss, by name or ``dict(type=NAME, ...)`` (see
            :mod:`ssld_zoo.distill.losses`); SSLD's ``SymmetricKL`` by default.
        observe_fraction: share of the steps during which the int8 ranges still move.
        on_step: called with ``(step, loss)`` after each step (progress, logging).
    """
    if steps < 1:
        raise ValueError(f"distill_quantized: steps must be at least 1, got {steps}")
    if not 0.0 <= observe_fraction <= 1.0:
        raise ValueError(
            f"distill_quantized: observe_fraction must be in [0, 1], got {observe_fraction}"
        )
    from torchao.quantization.pt2e import disable_observer

    criterion = build_loss(loss)
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    first = next(batches)
    student = prepare_qat(copy.deepcopy(model), first)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    freeze_at = math.ceil(observe_fraction * steps)
    x = first
    for step in range(steps):
        if step == freeze_at:
            student.apply(disable_observer)
        for group in opt.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / steps))
        with torch.no_grad():
            target = teacher(x)
        value = criterion(student(x), target)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if on_step is not None:
            on_step(step, value.item())
        if step + 1 < steps:
            x = next(batches)
    return convert(student)
