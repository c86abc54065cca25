"""``ssld-zoo mine``: pick the unlabeled images a teacher is most confident about, per class."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "mine",
        help="score an unlabeled pool with a teacher, keep the top-K per class",
        description="Score every image of a pool with the teacher and write the top-K most "
        "confident images per predicted class (path, class, confidence) to a list "
        "file usable as an unlabeled root. Interrupted runs resume from "
        "<out>.scores.tsv. With --exclude, pool images that near-duplicate an image "
        "under those folders (e.g. the val set) are dropped first and listed in "
        "<out>.duplicates.tsv.",
    )
    p.add_argument("--teacher", required=True, help="zoo name, e.g. resnext101_32x16d_wsl")
    p.add_argument("--weights", help="weights file for the teacher architecture")
    p.add_argument(
        "--pool", required=True, nargs="+", help="folder(s) of images and/or list file(s)"
    )
    p.add_argument("--per-class", type=int, required=True, help="images kept per class (K)")
    p.add_argument("--min-conf", type=float, default=0.0, help="minimum teacher confidence")
    p.add_argument("--out", required=True, help="output list file")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda if available)")
    p.add_argument(
        "--cache",
        help="a teacher cache (`ssld-zoo label`) built over the pool with "
        "this teacher: reuse its scores, do not run the teacher",
    )
    p.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="DIR",
        help="folder(s), e.g. the val set: drop pool images that near-duplicate (resized, "
        "re-encoded, mirrored or slightly cropped copies) any image under them",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from ssld_zoo.cli._console import console
    from ssld_zoo.distill.mining import mine

    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("score", total=None)
        res = mine(
            args.teacher,
            args.pool,
            args.per_class,
            args.out,
            min_conf=args.min_conf,
            weights=args.weights,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=args.device,
            cache=args.cache,
            exclude=args.exclude,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if args.exclude:
        from ssld_zoo.distill.mining import duplicates_path

        console.print(
            f"dropped {res.duplicates} pool images as near-duplicates of images under "
            f"{', '.join(args.exclude)}; listed in [bold]{duplicates_path(res.out)}[/]"
        )
    console.print(
        f"scored {res.scored} images ({res.reused} reused from an earlier run, "
        f"{res.unreadable} unreadable); wrote {res.selected} images in "
        f"{len(res.per_class)} classes to [bold]{res.out}[/]"
    )
    return 0
