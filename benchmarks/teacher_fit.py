"""How much a teacher says beyond the labels: its top-1, confidence and entropy on training crops,
unlabeled crops and validation crops.

    .venv/bin/python benchmarks/teacher_fit.py WEIGHTS [WEIGHTS ...] [--data ../shared/data/cifar10]
        [--arch resnet18_vd] [--recipe cifar10/ssld] [--images 2000]

A teacher that has fitted its own training images (top-1 and confidence on their crops far above
validation's) predicts little more than their labels there, so label-free distillation on those
images teaches the student about what supervised training would; on images it never saw (the
unlabeled split) its predictions carry more. Each split is seen through the training transform
of ``--recipe`` (the crops a student distils on, epoch 1), on ``--images`` images spread evenly
over the split. CPU or GPU; prints one row per teacher and split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def crop_stats(
    model: torch.nn.Module, batch: dict, mean: torch.Tensor, std: torch.Tensor
) -> dict[str, float]:
    """top-1 (labeled crops only), mean max-probability and mean entropy (nats) of ``model``."""
    x = (batch["inputs"].float() / 255.0 - mean) / std
    with torch.inference_mode():
        p = torch.cat([model(c).softmax(1) for c in x.split(500)])
    labels = batch["labels"]
    labeled = labels >= 0
    top1 = (
        (p.argmax(1)[labeled] == labels[labeled]).float().mean().item() * 100
        if labeled.any()
        else float("nan")
    )
    entropy = -(p * p.clamp_min(1e-12).log()).sum(1).mean().item()
    return dict(top1=top1, confidence=p.max(1).values.mean().item(), entropy=entropy)


def main(argv: list[str] | None = None) -> int:
    from mmengine.registry import TRANSFORMS
    from rich.console import Console
    from rich.table import Table

    import ssld_zoo
    from ssld_zoo.data.images import ImageDataset, collate_images
    from ssld_zoo.distill.recipes import load_recipe, train_images_cfg

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "weights",
        nargs="+",
        type=Path,
        help="teacher weights exported by ssld-zoo distill (.safetensors + card)",
    )
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10")
    p.add_argument("--arch", default="resnet18_vd")
    p.add_argument("--recipe", default="cifar10/ssld", help="whose training crops to use")
    p.add_argument("--images", type=int, default=2000, help="images per split")
    args = p.parse_args(argv)

    recipe = load_recipe(args.recipe)
    images = train_images_cfg(recipe)
    transform = TRANSFORMS.build(images["transform"])
    # the normalisation the recipe's models share (CIFAR-10's statistics)
    mean = torch.tensor(recipe["model"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(recipe["model"]["std"]).view(1, -1, 1, 1)
    splits = {
        "train": dict(labeled_roots=[args.data / "train"]),
        "unlabeled": dict(unlabeled_roots=[args.data / "unlabeled"]),
        "val": dict(labeled_roots=[args.data / "val"]),
    }
    batches = {}
    for name, roots in splits.items():
        ds = ImageDataset(transform=transform, seed=images["seed"], **roots)
        step = max(1, len(ds) // args.images)
        batches[name] = collate_images([ds[(1, i)] for i in range(0, len(ds), step)][: args.images])

    table = Table(title=f"teacher on {args.recipe}'s training crops ({args.images} images a split)")
    for col in ("weights", "split", "top-1", "mean max-prob", "mean entropy (nats)"):
        table.add_column(col, justify="left" if col in ("weights", "split") else "right")
    for w in args.weights:
        if not w.is_file():
            raise SystemExit(f"{w}: no such weights file")
        model = ssld_zoo.load(args.arch, weights=str(w)).eval()  # classes: from its card
        for name, batch in batches.items():
            s = crop_stats(model, batch, mean, std)
            table.add_row(
                str(w),
                name,
                "-" if s["top1"] != s["top1"] else f"{s['top1']:.1f}",
                f"{s['confidence']:.3f}",
                f"{s['entropy']:.3f}",
            )
    Console(width=max(Console().width, 130)).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
