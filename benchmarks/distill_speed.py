"""Training throughput of distillation, side by side in one run: (a) the student alone
(supervised, no teacher), (b) with the online teacher as it was before the fast teacher (fp32,
BatchNorm unfolded), (c) with the fast online teacher, (d) from a teacher cache; plus the
cache's one-time build cost and its bytes per image.

    python benchmarks/distill_speed.py [--teacher resnet50_vd] [--student mobilenetv3_small_x1_0]
        [--size 224] [--batch 16] [--iters 6] [--repeats 2] [--views 8] [--topk 10]
        [--crops 4] [--precision fp32,bf16] [--compile] [--images DIR] [--json out.json]

On a GPU, the paper's pair: ``--teacher resnext101_32x16d_wsl --student resnet50_vd
--batch 128 --precision bf16``. bf16 on a CPU pays only where the CPU has native bf16
(AVX512-BF16 or AMX); elsewhere it is slower than fp32.

Every configuration is a real ``ssld-zoo distill`` run (the mmengine runner, the recipe's data
loader and augmentation), timed on the same images, student and batch, after ``--warmup``
steps; configurations alternate over ``--repeats`` so that machine load hits all alike, and
the best of each is reported. Images: $SSLD_ZOO_TEST_DATA/coco_mini/images (228 real photos up
to 640 px, decoded and cropped to ``--size`` each step), else random JPEGs; ``--images DIR``: an
ImageFolder root of your own (more images than a batch of many workers needs per epoch:
benchmarks/gpu_proof.py gives Imagenette's 4,000). Models are randomly
initialised with 1,000 classes; denormals are flushed (see benchmarks/distill_overhead.py).
Throughput counts training views (student images) per second.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from mmengine.hooks import Hook

ROOT = Path(__file__).resolve().parents[1]


def _image_root(tmp: Path, images: str | None = None) -> Path:
    """An ImageFolder tree of real photos (symlinks), or random JPEGs without the data;
    ``images``: the caller's own ImageFolder root, used as it is."""
    if images:
        return Path(images)
    src = (
        Path(os.environ.get("SSLD_ZOO_TEST_DATA", ROOT.parent / "shared" / "data"))
        / "coco_mini"
        / "images"
    )
    root = tmp / "images"
    if src.is_dir():
        for split in ("train", "val"):
            (root / split).mkdir(parents=True)
            for f in sorted((src / split).glob("*.jpg")):
                (root / split / f.name).symlink_to(f)
        return root
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "random").mkdir(parents=True)
    for i in range(228):
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(
            root / "random" / f"{i}.jpg", quality=90
        )
    return root


class _Clock(Hook):
    priority = "LOWEST"

    def __init__(self, warmup: int, iters: int):
        self.warmup, self.iters, self.t0, self.t1, self.views = warmup, iters, None, None, 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        step = runner.iter + 1  # across epochs
        if step == self.warmup:
            self.t0 = time.perf_counter()
        elif step > self.warmup:
            self.t1 = time.perf_counter()
            self.views += int(data_batch["inputs"].shape[0])
        if step >= self.warmup + self.iters:
            raise _Done


class _Done(Exception):
    pass


def recipe(root: Path, args, *, teacher: dict | None, cache: dict | None = None):
    """The benchmark's recipe; ``cache``: ``dict(path=, crops_per_image=)`` to train from one."""
    from ssld_zoo.distill.recipes import compose_recipe

    images = dict(
        type="ImageDataset",
        labeled_roots=[str(root)],
        transform=dict(type="TrainViewTransform", input_size=args.size),
    )
    dataset, collate = images, "collate_images"
    if cache is not None:
        dataset = dict(
            type="CachedViewDataset",
            cache=cache["path"],
            images=images,
            crops_per_image=cache.get("crops_per_image", 1),
        )
        collate = "collate_cached"
    return compose_recipe(
        dict(
            model=dict(
                teacher=None
                if teacher is None
                else dict(
                    type="ZooModel",
                    name=args.teacher,
                    pretrained=False,
                    num_classes=1000,
                    **teacher,
                ),
                student=dict(type="ZooModel", name=args.student, num_classes=1000),
                hard_label_weight=1.0 if teacher is None else 0.0,
                teacher_cache=None if cache is None else cache["path"],
                data_preprocessor=dict(channels_last=args.channels_last),
            ),
            train_dataloader=dict(
                batch_size=args.batch,
                num_workers=args.workers,
                persistent_workers=args.workers > 0,
                drop_last=True,
                sampler=dict(type="EpochIndexSampler", shuffle=True),
                collate_fn=dict(type=collate),
                dataset=dataset,
            ),
            optim_wrapper=dict(
                type="auto_amp_optim_wrapper",
                optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4),
            ),
            param_scheduler=[
                dict(type="CosineAnnealingLR", by_epoch=True, begin=0, convert_to_iter_based=True)
            ],
            train_cfg=dict(type="SkipEmptyBatchTrainLoop", max_epochs=100),
            default_hooks=dict(
                logger=dict(interval=10**6), checkpoint=dict(interval=10**6, save_best=None)
            ),
            visualizer=dict(vis_backends=[dict(type="LocalVisBackend")]),
        ),
        "distill_speed.py",
    )


def train_speed(r: dict, args, work: Path) -> float:
    """Training views per second of one recipe (a real runner)."""
    from ssld_zoo.distill.runner import build_runner

    runner = build_runner(r, work, log_level="ERROR")
    clock = _Clock(args.warmup, args.iters)
    runner.register_hook(clock)
    try:
        runner.train()
    except _Done:
        pass
    return clock.views / (clock.t1 - clock.t0)


def main(argv: list[str] | None = None) -> int:
    torch.set_flush_denormal(True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="resnet50_vd")
    p.add_argument("--student", default="mobilenetv3_small_x1_0")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=16, help="views per step")
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--views", type=int, default=8, help="views stored per image (N)")
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--crops", type=int, default=4, help="views cut per decode in (d) (m)")
    p.add_argument(
        "--precision",
        default="fp32,bf16",
        help="fast teacher's precision(s) in (c), comma-separated; the first also builds the cache",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the teacher in (c)")
    p.add_argument("--channels-last", default="auto", help="runtime.channels_last of all runs")
    p.add_argument("--images", help="an ImageFolder root (default: coco_mini's photos)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    args.channels_last = {"true": True, "false": False}.get(args.channels_last.lower(), "auto")
    from rich.console import Console
    from rich.table import Table

    from ssld_zoo.data.walk import is_image
    from ssld_zoo.distill.cache import build_teacher_cache

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = _image_root(tmp, args.images)
        n_images = sum(1 for p in root.rglob("*") if is_image(p.name))
        # The one-time cost: the fast teacher over every image, N views each.
        fast = dict(
            precision=args.precision.split(",")[0],
            fold_bn=True,
            compile=args.compile and dict(mode="max-autotune-no-cudagraphs") or False,
        )
        t0 = time.perf_counter()
        built = build_teacher_cache(
            recipe(root, args, teacher=fast),
            tmp / "cache",
            views=args.views,
            topk=args.topk,
            shard_size=64,
        )
        build_s = time.perf_counter() - t0
        configs = {
            "(a) supervised student, no teacher": dict(teacher=None),
            "(b) online teacher as before (fp32, BN unfolded)": dict(
                teacher=dict(precision="fp32", fold_bn=False, channels_last=False)
            ),
            **{
                f"(c) fast online teacher (BN folded, channels_last, {prec}"
                f"{', compiled' if args.compile else ''})": dict(
                    teacher={**fast, "precision": prec}
                )
                for prec in args.precision.split(",")
            },
            f"(d) from the cache ({args.crops} views per decode)": dict(
                teacher=fast, cache=dict(path=str(tmp / "cache"), crops_per_image=args.crops)
            ),
        }
        speeds: dict[str, list[float]] = {k: [] for k in configs}
        for rep in range(args.repeats):
            for i, (name, kw) in enumerate(configs.items()):
                speeds[name].append(
                    train_speed(recipe(root, args, **kw), args, tmp / f"wd{rep}_{i}")
                )
    best = {k: max(v) for k, v in speeds.items()}
    a, b = best[next(iter(best))], list(best.values())[1]
    table = Table(
        title=f"distillation training throughput, {args.teacher} -> {args.student}, "
        f"{args.size} px, batch {args.batch}, {device.upper()}, "
        f"{torch.get_num_threads()} threads"
    )
    for c, j in (
        ("configuration", "left"),
        ("views/s", "right"),
        ("vs (a)", "right"),
        ("vs (b)", "right"),
        ("runs", "right"),
    ):
        table.add_column(c, justify=j)
    for k, v in best.items():
        table.add_row(
            k, f"{v:.1f}", f"{v / a:.2f}x", f"{v / b:.2f}x", " ".join(f"{x:.1f}" for x in speeds[k])
        )
    per_image = built.bytes / n_images
    Console(width=120).print(table)
    print(
        f"cache build (one time): {n_images} images x {args.views} views, top-{args.topk}, "
        f"{build_s:.1f} s = {n_images * args.views / build_s:.1f} views/s of teacher; "
        f"{per_image:.0f} bytes/image ({per_image / args.views:.1f} bytes/view)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": device,
                    "threads": torch.get_num_threads(),
                    "args": vars(args),
                    "views_per_s": best,
                    "runs": speeds,
                    "build_seconds": build_s,
                    "bytes_per_image": per_image,
                    "images": n_images,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
