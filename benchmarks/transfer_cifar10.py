"""Transfer benchmark: fine-tune a zoo backbone on CIFAR-10 with per-stage lrs, per weight set.

The paper's transfer table (PaddleClas ``distillation_en.md``) fine-tunes ResNet50_vd with its
ordinary (79.1%) and SSLD (83.0%) ImageNet weights: CIFAR-10 97.72 -> 97.94 at full size and
schedule. This script runs the same comparison, CPU-bounded by default (a per-class subset of
``../shared/data/cifar10``, 64 px, 2 epochs), and prints one row per weight set. Weight sets
that cannot be obtained (no network, no cache) are reported as such, not silently dropped;
``none`` (random init) is the floor every pretrained arm must clear.

    python benchmarks/transfer_cifar10.py                      # resnet50_vd: ssld, baseline, none
    python benchmarks/transfer_cifar10.py --model resnet18_vd --arms resnet18_vd,none
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        default=str(
            Path(os.environ.get("SSLD_ZOO_TEST_DATA", REPO.parent / "shared" / "data")) / "cifar10"
        ),
    )
    p.add_argument("--model", default="resnet50_vd")
    p.add_argument(
        "--arms",
        default="ssld,{model},none",
        help="comma-separated weights: ssld, a weight name, a file, or none",
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--train-per-class", type=int, default=50)
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--work-dir",
        default="work_dirs/transfer_cifar10",
        help="each arm trains (checkpoints, logs, export) in its own sub-folder",
    )
    args = p.parse_args(argv)

    import torch

    from ssld_zoo.adapters.transfer import TransferConfig, finetune

    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.data, "train").is_dir():
        print(
            f"CIFAR-10 image folder {args.data} not found (expected train/ and val/): set "
            f"SSLD_ZOO_TEST_DATA or --data",
            file=sys.stderr,
        )
        return 2
    cfg = TransferConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        image_size=args.image_size,
        max_train_per_class=args.train_per_class,
        max_val_per_class=args.val_per_class,
    )
    arms = [a.strip().format(model=args.model) for a in args.arms.split(",") if a.strip()]
    print(
        f"# {args.model} on {args.data}: {args.train_per_class}/class train, "
        f"{args.val_per_class}/class val, {args.image_size} px, {args.epochs} epochs, "
        f"batch {args.batch_size}, lr {args.lr}, torch threads {torch.get_num_threads()}"
    )
    rows = []
    for arm in arms:
        weights = None if arm.lower() == "none" else arm
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            res = finetune(
                args.model,
                args.data,
                weights=weights,
                cfg=cfg,
                work_dir=Path(args.work_dir) / arm.replace("/", "_"),
            )
        except Exception as e:  # one unobtainable weight set must not hide the others
            rows.append(
                (
                    arm,
                    None,
                    None,
                    None,
                    f"unavailable: {type(e).__name__}: {' '.join(str(e).split())[:160]}",
                )
            )
            continue
        rows.append(
            (
                arm,
                res.top1,
                time.perf_counter() - t0,
                time.process_time() - cpu0,
                f"stage lr x{list(res.stage_lr_mult)}",
            )
        )
    print("\n| weights | val top-1 (%) | wall (s) | CPU (s) | note |\n|---|---|---|---|---|")
    for arm, top1, wall, cpu, note in rows:

        def f(v, d=1):
            return "-" if v is None else f"{v:.{d}f}"

        print(f"| {arm} | {f(top1, 2)} | {f(wall)} | {f(cpu)} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
