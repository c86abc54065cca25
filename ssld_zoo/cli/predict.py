"""``ssld-zoo predict NAME IMAGE... [--weights FILE] [--topk 5]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from ssld_zoo.cli._console import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a zoo model")
    p.add_argument("name", help="model or weight name, e.g. resnet50_vd_ssld")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--weights", help="weights file to use instead of the published ones")
    p.add_argument("--topk", type=int, default=5, help="classes shown per image (>= 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    import ssld_zoo
    from ssld_zoo.preprocess import decode_image, eval_transform_of, shown_path

    if args.topk < 1:
        raise ValueError(f"--topk {args.topk}: expected a positive number of classes to show")
    model = ssld_zoo.load(args.name, weights=args.weights)
    transform = eval_transform_of(model, args.name).build()
    names = ssld_zoo.class_names() if model.num_classes == 1000 else None
    for path in args.images:
        image = decode_image(path)
        with torch.no_grad():
            probs = model(transform(image).unsqueeze(0)).softmax(-1)[0]
        top = probs.topk(min(args.topk, probs.numel()))
        table = Table(title=f"{shown_path(path)}  ({args.name})")
        table.add_column("rank", justify="right")
        table.add_column("class", justify="right")
        table.add_column("name")
        table.add_column("prob", justify="right")
        for rank, (p, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
            table.add_row(str(rank), str(i), names[i] if names else "-", f"{p:.4f}")
        console.print(table)
    return 0
