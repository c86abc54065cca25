"""Fine-tune a zoo backbone on an image-folder classification dataset, with per-stage lrs.

The paper's transfer table (Cui et al. 2021; PaddleClas ``distillation_en.md``) fine-tunes
ResNet50_vd and its SSLD weights on ten datasets with learning-rate multipliers per stage:
ResNet50_vd [0.1, 0.1, 0.2, 0.2, 0.3] (stem, then the four stages), MobileNetV3_large
[0.25, 0.25, 0.5, 0.5, 0.75]; the new classifier (and anything after the last stage) trains at
the full rate. Stages are those of :func:`ssld_zoo.adapters.stages.stage_layout`.

Data layout: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (torchvision ImageFolder).
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

import ssld_zoo
from ssld_zoo.adapters.stages import stage_layout
from ssld_zoo.registry import IMAGENET_MEAN, IMAGENET_STD, get_arch

__all__ = ["TransferConfig", "TransferResult", "default_stage_lr_mult", "finetune",
           "stage_param_groups"]

# Published per-stage multipliers (stem first), by family file (PaddleClas distillation_en.md).
# The zoo's MobileNetV3 has five stages (strides 2..32) where PaddleClas's list has five entries
# for stem + four block groups: the stem and the stride-2 stage share the first one.
_PUBLISHED_MULT = {
    "resnet_vd": (0.1, 0.1, 0.2, 0.2, 0.3),
    "mobilenet_v3": (0.25, 0.25, 0.25, 0.5, 0.5, 0.75),
}


def default_stage_lr_mult(name: str, n_stages: int) -> tuple[float, ...]:
    """The published multipliers (stem + stages) for ``name``'s family, else all 1.0."""
    mult = _PUBLISHED_MULT.get(get_arch(name).family)
    if mult is None or len(mult) != n_stages + 1:
        return (1.0,) * (n_stages + 1)
    return mult


@dataclass
class TransferConfig:
    """Hyper-parameters of one fine-tuning run (defaults: a short CPU-sized run)."""

    epochs: int = 2
    batch_size: int = 32
    lr: float = 0.01
    weight_decay: float = 1e-4
    image_size: int = 64
    stage_lr_mult: Sequence[float] | None = None  # None: the published ones for the family
    max_train_per_class: int | None = None
    max_val_per_class: int | None = None
    workers: int = 0
    seed: int = 0
    device: str = "cpu"


@dataclass
class TransferResult:
    name: str
    weights: str | None
    top1: float
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stage_lr_mult: tuple[float, ...] = ()
    num_classes: int = 0
    train_images: int = 0
    val_images: int = 0


def stage_param_groups(model: nn.Module, lr: float, weight_decay: float,
                       stage_lr_mult: Sequence[float]) -> list[dict]:
    """SGD parameter groups: stem at ``lr * mult[0]``, stage i at ``lr * mult[i + 1]``, the
    rest (classifier, layers after the last stage) at ``lr``. BatchNorm and bias parameters get
    no weight decay (the usual fine-tuning practice)."""
    layout = stage_layout(model)
    if len(stage_lr_mult) != len(layout.stages) + 1:
        raise ValueError(f"stage_lr_mult needs {len(layout.stages) + 1} values (stem + "
                         f"{len(layout.stages)} stages), got {list(stage_lr_mult)}")
    mults = {"stem": stage_lr_mult[0], "head": 1.0}
    mults.update({f"stages.{i}": m for i, m in enumerate(stage_lr_mult[1:])})
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = layout.group_of(name.rsplit(".", 1)[0])
        no_decay = p.ndim <= 1
        groups.setdefault((group, no_decay), []).append(p)
    return [{"params": ps, "lr": lr * mults[g], "initial_lr": lr * mults[g], "group": g,
             "weight_decay": 0.0 if nd else weight_decay} for (g, nd), ps in groups.items()]


def _datasets(data: Path, size: int, cfg: TransferConfig):
    from torchvision import datasets
    from torchvision.transforms import v2 as T

    for split in ("train", "val"):
        if not (data / split).is_dir():
            raise FileNotFoundError(f"{data / split} does not exist: expected an ImageFolder "
                                    f"layout {data}/train/<class>/*.jpg and {data}/val/<class>/")
    norm = [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(IMAGENET_MEAN,
                                                                          IMAGENET_STD)]
    train_tf = T.Compose([T.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
                          T.RandomHorizontalFlip()] + norm)
    val_tf = T.Compose([T.Resize(size, antialias=True), T.CenterCrop(size)] + norm)
    train = datasets.ImageFolder(str(data / "train"), transform=train_tf)
    val = datasets.ImageFolder(str(data / "val"), transform=val_tf)
    if train.classes != val.classes:
        raise ValueError(f"{data}: train classes {train.classes} differ from val classes "
                         f"{val.classes}")
    return (_per_class(train, cfg.max_train_per_class, cfg.seed),
            _per_class(val, cfg.max_val_per_class, cfg.seed), train.classes)


def _per_class(ds, cap: int | None, seed: int):
    if cap is None:
        return ds
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, (_, y) in enumerate(ds.samples):
        by_class.setdefault(y, []).append(i)
    keep = []
    for idx in by_class.values():
        keep += rng.sample(idx, min(cap, len(idx)))
    return Subset(ds, sorted(keep))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: str) -> float:
    """Top-1 accuracy (%) of ``model`` on ``loader``."""
    model.eval()
    correct = total = 0
    for x, y in loader:
        pred = model(x.to(device)).argmax(1)
        correct += (pred.cpu() == y).sum().item()
        total += y.numel()
    return 100.0 * correct / max(total, 1)


def finetune(name: str, data: str | Path, weights: str | None = "ssld",
             cfg: TransferConfig | None = None,
             progress: Callable[[dict], None] | None = None) -> TransferResult:
    """Fine-tune zoo model ``name`` on ``data`` (ImageFolder train/val) and return val top-1.

    ``weights``: ``'ssld'`` (the architecture's SSLD weights), a registered weight name, a
    file, or None for random initialisation. ``progress`` is called with each epoch's record.
    """
    from ssld_zoo.adapters.resolve import resolve_weights

    cfg = cfg or TransferConfig()
    torch.manual_seed(cfg.seed)
    data = Path(data)
    arch = get_arch(name).name  # names first: cheap, and before scanning thousands of files
    resolved = resolve_weights(name, weights)
    train, val, classes = _datasets(data, cfg.image_size, cfg)
    model = (ssld_zoo.load(arch, weights=resolved) if resolved is not None
             else ssld_zoo.load(arch, pretrained=False))
    model.reset_classifier(len(classes))
    model.to(cfg.device)
    n_stages = len(model.feature_info)
    mult = tuple(cfg.stage_lr_mult) if cfg.stage_lr_mult is not None else \
        default_stage_lr_mult(arch, n_stages)
    groups = stage_param_groups(model, cfg.lr, cfg.weight_decay, mult)
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    g = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train, cfg.batch_size, shuffle=True, generator=g, drop_last=True,
                              num_workers=cfg.workers)
    val_loader = DataLoader(val, cfg.batch_size * 2, num_workers=cfg.workers)
    steps = max(1, cfg.epochs * len(train_loader))
    warmup = min(steps // 10, len(train_loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / (warmup + 1) if s < warmup
                                              else 0.5 * (1 + math.cos(math.pi * s / steps)))
    loss_fn = nn.CrossEntropyLoss()
    result = TransferResult(arch, resolved, 0.0, stage_lr_mult=mult, num_classes=len(classes),
                            train_images=len(train), val_images=len(val))
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        total = n = 0.0
        for x, y in train_loader:
            loss = loss_fn(model(x.to(cfg.device)), y.to(cfg.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * y.numel()
            n += y.numel()
        top1 = evaluate(model, val_loader, cfg.device)
        record = {"epoch": epoch + 1, "train_loss": total / max(n, 1), "val_top1": top1,
                  "seconds": time.perf_counter() - t0}
        result.epochs.append(record)
        if progress is not None:
            progress(record)
    result.top1 = result.epochs[-1]["val_top1"] if result.epochs else \
        evaluate(model, val_loader, cfg.device)
    result.seconds = time.perf_counter() - t0
    return result
