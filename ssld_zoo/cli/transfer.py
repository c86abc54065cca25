"""``ssld-zoo transfer NAME --data DIR``: fine-tune a zoo backbone on an image folder, report top-1.

Runs on the shared engine (the one ``ssld-zoo distill`` uses): checkpoints, logs, TensorBoard
events and the exported network go to ``--work-dir`` (default ``work_dirs/transfer/NAME``);
``--resume`` continues from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json

from ssld_zoo.cli._console import console


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mmengine.config import DictAction

    p = sub.add_parser(
        "transfer",
        help="fine-tune a zoo backbone on an ImageFolder dataset (per-stage lrs)",
        description="Fine-tune NAME on DIR/train/<class>/* and report top-1 on DIR/val, with "
        "per-stage learning-rate multipliers as in the SSLD paper's transfer table.",
    )
    p.add_argument("name", help="zoo model or weight name, e.g. resnet50_vd")
    p.add_argument("--data", required=True, help="folder with train/ and val/ class folders")
    p.add_argument(
        "--weights",
        default="ssld",
        help="'ssld' (default: the architecture's SSLD weights), a registered weight "
        "name (e.g. resnet50_vd for the ordinary weights), a file, or 'none'",
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01, help="base lr (the classifier's)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument(
        "--stage-lr-mult",
        type=_floats,
        default=None,
        help="stem,stage0,...: lr multipliers (default: the published ones for the "
        "family, e.g. 0.1,0.1,0.2,0.2,0.3 for ResNet_vd)",
    )
    p.add_argument("--max-train-per-class", type=int, default=None)
    p.add_argument("--max-val-per-class", type=int, default=None)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (the current GPU)")
    p.add_argument(
        "--warmup-epochs",
        type=float,
        default=None,
        help="linear warm-up length (default: 10%% of the steps, at most 1 epoch)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="MOMENTUM",
        help="keep an EMA of the weights (ema = (1-m) ema + m w each step, e.g. "
        "2e-4); validation and the export use it",
    )
    p.add_argument(
        "--amp",
        choices=("auto", "bf16", "fp16", "none"),
        default="auto",
        help="mixed precision on a GPU (auto: bf16 where supported, else fp16)",
    )
    p.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="no TensorBoard events (written when tensorboard is installed)",
    )
    p.add_argument(
        "--work-dir",
        default=None,
        help="checkpoints, logs and the exported network (default: work_dirs/transfer/NAME)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue from CKPT, or from the latest checkpoint in the work dir",
    )
    p.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        metavar="KEY=VALUE",
        help="override the run's Runner config (see "
        "ssld_zoo.adapters.transfer.transfer_recipe), e.g. "
        "default_hooks.logger.interval=10 optim_wrapper.optimizer.momentum=0.95",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssld_zoo.adapters.transfer import TransferConfig, finetune

    cfg = TransferConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        image_size=args.image_size,
        stage_lr_mult=args.stage_lr_mult,
        max_train_per_class=args.max_train_per_class,
        max_val_per_class=args.max_val_per_class,
        workers=args.workers,
        seed=args.seed,
        device=args.device,
        warmup_epochs=args.warmup_epochs,
        ema=args.ema,
        amp=args.amp,
        tensorboard=not args.no_tensorboard,
    )
    weights = None if args.weights.lower() == "none" else args.weights

    def progress(rec: dict) -> None:
        if not args.json:
            console.print(
                f"epoch {rec['epoch']}: train loss {rec['train_loss']:.4f}, "
                f"val top-1 {rec['val_top1']:.2f}% ({rec['seconds']:.0f} s)"
            )

    res = finetune(
        args.name,
        args.data,
        weights=weights,
        cfg=cfg,
        work_dir=args.work_dir,
        resume=args.resume,
        progress=progress,
        cfg_options=args.cfg_options,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "name": res.name,
                    "weights": res.weights,
                    "top1": res.top1,
                    "epochs": res.epochs,
                    "seconds": res.seconds,
                    "stage_lr_mult": list(res.stage_lr_mult),
                    "num_classes": res.num_classes,
                    "train_images": res.train_images,
                    "val_images": res.val_images,
                    "work_dir": str(res.work_dir),
                    "export_path": str(res.export_path),
                }
            )
        )
    else:
        console.print(
            f"[bold]{res.name}[/] weights={res.weights or 'random init'} "
            f"stage lr x{list(res.stage_lr_mult)}: top-1 [bold]{res.top1:.2f}%[/] on "
            f"{res.val_images} val images ({res.num_classes} classes), "
            f"{res.seconds:.0f} s"
        )
        console.print(
            f"checkpoints and logs in [bold]{res.work_dir}[/]; fine-tuned network "
            f"exported to [bold]{res.export_path}[/] (+ .json model card): "
            f"ssld_zoo.load({res.name!r}, weights={str(res.export_path)!r})"
        )
    return 0
