"""``ssld-zoo label RECIPE``: run a recipe's teacher once over its images into a teacher cache.

    ssld-zoo label cifar10/ssld_cached --views 30 --topk 5
    torchrun --nproc-per-node 8 -m ssld_zoo.cli.main label my_r50d_cached.py --views 64 --topk 10

A recipe with ``teacher_cache=dict(path=...)`` then trains from the cache without the teacher
(``ssld-zoo distill``), and ``ssld-zoo mine --cache DIR`` reuses its scores.
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    from mmengine.config import DictAction
    p = subparsers.add_parser(
        "label", help="build a teacher cache: the teacher's outputs on N stored views per image",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe file or name (`ssld-zoo recipes` lists them)")
    p.add_argument("--views", "--crops", type=int, required=True, dest="views",
                   help="augmented views stored per image (N)")
    p.add_argument("--topk", type=int, default=10, help="classes kept per view (K, default 10)")
    p.add_argument("--format", choices=("topk", "sampled"), default="topk",
                   help="topk: the K most probable classes (default; suits every loss); "
                        "sampled: K draws from the teacher (unbiased; KL/SoftTargetCE only)")
    p.add_argument("--out", help="cache folder (default: the recipe's teacher_cache.path, else "
                                 "work_dirs/<recipe>/teacher_cache)")
    p.add_argument("--batch-size", type=int, help="views per teacher forward "
                                                  "(default: the recipe's batch)")
    p.add_argument("--shard-size", type=int, default=4096,
                   help="images per shard file (the unit of resuming and of parallel work)")
    p.add_argument("--num-workers", type=int, help="data-loader workers (default: the recipe's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda if available)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   metavar="KEY=VALUE", help="override recipe values")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from ssld_zoo.cli._console import console
    from ssld_zoo.distill.cache import build_teacher_cache
    from ssld_zoo.distill.config import load_recipe, recipe_name

    recipe = load_recipe(args.recipe, args.cfg_options)
    out = args.out or (recipe["teacher_cache"] or {}).get("path") or \
        Path("work_dirs") / recipe_name(recipe.filename) / "teacher_cache"
    import os
    show = int(os.environ.get("RANK", 0)) == 0
    with Progress(TextColumn("[bold]labelling"), BarColumn(), MofNCompleteColumn(),
                  TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=not show) as bar:
        task = bar.add_task("label", total=None, rate="")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{done / elapsed:.1f} img/s" if elapsed > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate)

        res = build_teacher_cache(recipe, out, views=args.views, topk=args.topk,
                                  kind=args.format, batch_size=args.batch_size,
                                  shard_size=args.shard_size, device=args.device,
                                  num_workers=args.num_workers, progress=progress)
    if show:
        s = res.spec
        console.print(f"teacher cache [bold]{res.root}[/]: {s.num_images} images x {s.views} "
                      f"views, {s.kind} {s.topk}; {res.built_shards} shards built "
                      f"({res.images} images, {res.images_per_s:.1f} img/s), "
                      f"{res.reused_shards} reused; {res.bytes / 1e6:.1f} MB, "
                      f"{res.bytes / max(1, s.num_images):.0f} B/image")
        console.print(f"train from it with teacher_cache=dict(path={str(res.root)!r}) in the "
                      f"recipe, or --cfg-options teacher_cache.path={res.root}")
    return 0
