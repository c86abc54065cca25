"""``ssld-zoo demo``: SSLD end to end on scikit-learn's bundled digits, CPU, a few minutes.

A teacher trained with labels; a student trained with labels on 100 digits (the baseline); the
same student distilled from the teacher with no labels at all, on those 100 digits plus ~1,300
unlabeled ones. Top-1 of all three on 400 held-back digits, and a plot.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="SSLD on scikit-learn's digits: teacher, baseline, label-free student",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--work-dir",
        help="where data, checkpoints, exports and the plot go "
        "(default: a temporary folder; the plot is copied to "
        "./ssld_demo.png)",
    )
    p.add_argument("--plot", default="ssld_demo.png", help="where to save the PNG plot")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few epochs only (tests the pipeline; accuracies are not meaningful)",
    )
    p.add_argument("--teacher", help="teacher architecture (default: resnet18_vd)")
    p.add_argument("--student", help="student architecture (default: mobilenetv1_x0_25)")
    p.add_argument("--labeled-per-class", type=int, help="labeled digits per class (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    from rich.table import Table

    from ssld_zoo.cli._console import console
    from ssld_zoo.cli.distill import RichProgressHook
    from ssld_zoo.distill.demo import DemoConfig, run_demo

    cfg = DemoConfig.quick() if args.quick else DemoConfig()
    cfg.seed = args.seed
    if args.teacher:
        cfg.teacher = args.teacher
    if args.student:
        cfg.student = args.student
    if args.labeled_per_class:
        cfg.labeled_per_class = args.labeled_per_class
    stages = {
        "teacher": f"1/3 teacher {cfg.teacher}, trained with labels",
        "baseline": f"2/3 student {cfg.student}, trained with labels on "
        f"{cfg.labeled_per_class * 10} digits",
        "ssld": f"3/3 student {cfg.student}, SSLD from the teacher, no labels",
    }
    with tempfile.TemporaryDirectory(prefix="ssld_demo_") as tmp:
        work = Path(args.work_dir or tmp)
        res = run_demo(
            work,
            cfg,
            on_stage=lambda s: console.print(f"[bold]{stages[s]}[/]"),
            extra_hooks=lambda s: [RichProgressHook(s)],
        )
        plot = Path(args.plot)
        if res.plot_path and res.plot_path.resolve() != plot.resolve():
            plot.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(res.plot_path, plot)
    table = Table(
        title=f"SSLD on scikit-learn digits: top-1 on {cfg.test_size} held-back "
        f"digits{' (quick mode)' if args.quick else ''}"
    )
    for col, just in (
        ("model", "left"),
        ("architecture", "left"),
        ("labels", "right"),
        ("images", "right"),
        ("top-1 %", "right"),
        ("time s", "right"),
    ):
        # Short cells, none wrapped: the whole table fits 80 columns (a pipe or a log gets 80).
        table.add_column(col, justify=just, no_wrap=True)
    names = {"teacher": "teacher", "baseline": "baseline student", "ssld": "SSLD student"}
    for a in res.arms:
        style = "bold green" if a.name == "ssld" else None
        table.add_row(
            names[a.name],
            a.arch,
            str(a.labels_used),
            str(a.images_seen),
            f"{a.top1:.1f}",
            f"{a.seconds:.0f}",
            style=style,
        )
    console.print(table)
    gain = res.arm("ssld").top1 - res.arm("baseline").top1
    console.print(
        f"SSLD student vs baseline: [bold]{gain:+.1f}[/] points top-1, without "
        f"using a single label. Plot: [bold]{plot}[/]  (total {res.seconds:.0f} s)"
    )
    return 0
