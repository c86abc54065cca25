"""``ssld-zoo label RECIPE``: run a recipe's teacher once over its images into a teacher cache.

    ssld-zoo label cifar10/ssld_cached --views 30 --topk 5
    torchrun --nproc-per-node 8 -m ssld_zoo.cli.main label r50d --views 64 --topk 10
    ssld-zoo label cifar10/ssld_cached --verify            # check every file and image
    ssld-zoo label cifar10/ssld_cached --verify --repair   # and rebuild what is wrong

A recipe with ``model.teacher_cache=DIR`` and a ``CachedViewDataset`` of it (as
``recipes/cifar10/ssld_cached.py``) then trains from the cache without the teacher
(``ssld-zoo distill``), and ``ssld-zoo mine --cache DIR`` reuses its scores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    from mmengine.config import DictAction

    p = subparsers.add_parser(
        "label",
        help="build a teacher cache: the teacher's outputs on N stored views per image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="recipe file or name (`ssld-zoo recipes` lists them)")
    p.add_argument(
        "--views",
        "--crops",
        type=int,
        dest="views",
        help="augmented views stored per image (N; required to build)",
    )
    p.add_argument(
        "--topk",
        type=int,
        default=10,
        help="classes kept per view (K, default 10); keeping all of a teacher's classes "
        "rebuilds its output exactly (docs/distillation.md)",
    )
    p.add_argument(
        "--format",
        choices=("topk", "sampled"),
        default="topk",
        help="topk: the K most probable classes (default; suits every loss); "
        "sampled: K draws from the teacher (unbiased; KL/SoftTargetCE only)",
    )
    p.add_argument(
        "--out",
        help="cache folder (default: the recipe's model.teacher_cache, else "
        "work_dirs/<recipe>/teacher_cache)",
    )
    p.add_argument(
        "--batch-size", type=int, help="views per teacher forward (default: the recipe's batch)"
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=4096,
        help="images per shard file (the unit of resuming and of parallel work)",
    )
    p.add_argument("--num-workers", type=int, help="data-loader workers (default: the recipe's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda if available)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check an existing cache: every file's sha256 and every image's size "
        "and fingerprint; exit 1 naming what is wrong",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="with --verify: rebuild the damaged shards and those holding changed "
        "images (the teacher relabels them)",
    )
    p.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        metavar="KEY=VALUE",
        help="override recipe values",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ssld_zoo.cli._console import console
    from ssld_zoo.distill.cache import build_teacher_cache
    from ssld_zoo.distill.recipes import load_recipe, recipe_name

    recipe = load_recipe(args.recipe, args.cfg_options)
    out = (
        args.out
        or recipe["model"].get("teacher_cache")
        or Path("work_dirs") / recipe_name(recipe.filename) / "teacher_cache"
    )
    build = dict(views=args.views, topk=args.topk, kind=args.format, shard_size=args.shard_size)
    if args.repair and not args.verify:
        raise ValueError("--repair goes with --verify")
    if args.verify:
        build = _verify(out, args.repair)
        if build is None:
            return 1
        if not build:
            return 0
    elif args.views is None:
        raise ValueError("--views is required to build a cache (or give --verify)")
    import os

    show = int(os.environ.get("RANK", 0)) == 0
    with Progress(
        TextColumn("[bold]labelling"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task("label", total=None, rate="")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{done / elapsed:.1f} img/s" if elapsed > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate)

        res = build_teacher_cache(
            recipe,
            out,
            batch_size=args.batch_size,
            device=args.device,
            num_workers=args.num_workers,
            progress=progress,
            **build,
        )
    if show:
        s = res.spec
        console.print(
            f"teacher cache [bold]{res.root}[/]: {s.num_images} images x {s.views} "
            f"views, {s.kind} {s.topk}; {res.built_shards} shards built "
            f"({res.images} images, {res.images_per_s:.1f} img/s), "
            f"{res.reused_shards} reused; {res.bytes / 1e6:.1f} MB, "
            f"{res.bytes / max(1, s.num_images):.0f} B/image"
        )
        console.print(
            f"train from it with model.teacher_cache={str(res.root)!r} and a "
            f"CachedViewDataset of it in the recipe (see recipes/cifar10/ssld_cached.py)"
        )
    return 0


def _verify(out, repair: bool) -> dict | None:
    """Check the cache at ``out``, print what is wrong. Returns {} when it is sound, None when
    it is not (and not repaired), else the settings to rebuild the marked shards with."""
    from ssld_zoo.cli._console import console
    from ssld_zoo.distill.cache.format import CacheSpec, read_manifest
    from ssld_zoo.distill.cache.verify import mark_for_rebuild, verify_cache

    report = verify_cache(out)
    for line in report.damaged + report.changed + report.missing:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if report.ok:
        console.print(
            f"teacher cache {report.root}: every file matches its sha256, and the "
            f"{report.images_checked} cached images are those it was built on"
        )
        return {}
    console.print(
        f"teacher cache {report.root}: {len(report.damaged)} damaged files, "
        f"{len(report.changed)} changed and {len(report.missing)} unreadable images; "
        f"{len(report.shards)} shards to rebuild"
        + ("" if repair else " (rebuild them with --verify --repair)"),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if not repair:
        return None
    spec = CacheSpec.from_json(read_manifest(report.root)["spec"])
    mark_for_rebuild(report)
    return dict(views=spec.views, topk=spec.topk, kind=spec.kind, shard_size=spec.shard_size)
