"""``ssld-zoo distill RECIPE``: train a student from a teacher as a recipe says, then export it.

Single process::

    ssld-zoo distill r50d --work-dir work_dirs/r50d \\
        --cfg-options train_dataloader.dataset.labeled_roots="['/data/imagenet/train']" \\
                      val_dataloader.dataset.labeled_roots="['/data/imagenet/val']"

Several GPUs or nodes (the recipe's batch size is the global one)::

    torchrun --nproc-per-node 8 -m ssld_zoo.cli.main distill r50d --launcher pytorch
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmengine.hooks import Hook

__all__ = ["add_parser", "RichProgressHook"]


class RichProgressHook(Hook):
    """A rich progress bar for training and validation epochs (rank 0 only)."""

    priority = "VERY_LOW"

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.progress = None
        self.task = None

    def before_run(self, runner) -> None:
        from mmengine.dist import get_rank
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from ssld_zoo.cli._console import console

        if get_rank() != 0:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.progress.start()

    def _start(self, runner, what: str, total: int) -> None:
        if self.progress is None:
            return
        desc = (
            f"{self.label + ' ' if self.label else ''}{what} {runner.epoch + (what == 'train')}"
            f"/{runner.max_epochs}"
        )
        self.task = self.progress.add_task(desc, total=total, info="")

    def _end(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def before_train_epoch(self, runner) -> None:
        self._start(runner, "train", len(runner.train_dataloader))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.progress is None or self.task is None:
            return
        info = ""
        if outputs and "loss" in outputs:
            info = f"loss {float(outputs['loss'].detach()):.4f}"
        self.progress.update(self.task, advance=1, info=info)

    def after_train_epoch(self, runner) -> None:
        self._end()

    def before_val_epoch(self, runner) -> None:
        self._start(runner, "val", len(runner.val_dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=1)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._end()
        if self.progress is not None and metrics:
            text = "  ".join(f"{k} {v:.2f}" for k, v in metrics.items())
            self.progress.console.print(f"[dim]epoch {runner.epoch}[/]  {text}")

    def after_run(self, runner) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def add_parser(subparsers) -> None:
    from mmengine.config import DictAction

    p = subparsers.add_parser(
        "distill",
        help="train a student from a teacher (SSLD) as a recipe says",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="recipe file or name (`ssld-zoo recipes` lists them)")
    p.add_argument(
        "--work-dir",
        help="checkpoints, logs and the exported student (default: work_dirs/<recipe name>)",
    )
    p.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        metavar="KEY=VALUE",
        help="override recipe values, e.g. "
        "train_dataloader.dataset.labeled_roots=\"['/data/train']\" "
        "train_cfg.max_epochs=10",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="resume from CKPT, or from the latest checkpoint in the work dir "
        "(none there is an error, unless --allow-fresh)",
    )
    p.add_argument(
        "--allow-fresh",
        action="store_true",
        help="with --resume: start from scratch when the work dir has no checkpoint "
        "yet (e.g. a job script that is restarted until it finishes)",
    )
    p.add_argument(
        "--launcher",
        choices=("none", "pytorch", "slurm"),
        default="none",
        help="process launcher: pytorch for torchrun (DDP)",
    )
    p.add_argument("--no-export", action="store_true", help="do not export the final student")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ssld_zoo.cli._console import console, err_console
    from ssld_zoo.distill.recipes import load_recipe, recipe_name
    from ssld_zoo.distill.runner import run_distill
    from ssld_zoo.engine.models import spec_text
    from ssld_zoo.engine.preprocessor import NonFiniteLossError

    if args.allow_fresh and args.resume is not True:
        raise ValueError(
            "--allow-fresh goes with a bare --resume (the latest checkpoint of the "
            "work dir, if any); it has no meaning without it or with --resume CKPT"
        )
    recipe = load_recipe(args.recipe, args.cfg_options)
    work_dir = Path(args.work_dir or Path("work_dirs") / recipe_name(recipe.filename))
    hooks = [] if args.no_progress else [RichProgressHook()]
    try:
        result = run_distill(
            recipe,
            work_dir,
            launcher=args.launcher,
            resume=args.resume,
            extra_hooks=hooks,
            export=not args.no_export,
            allow_fresh=args.allow_fresh,
        )
    except NonFiniteLossError as e:
        from ssld_zoo.engine.checkpoint import find_resume_checkpoint

        last = find_resume_checkpoint(work_dir)
        where = str(last) if last is not None else "none was written yet"
        err_console.print(
            f"[bold red]error:[/] {e}\nLast good checkpoint: {where} "
            f"(continue with --resume after changing the recipe)"
        )
        return 1
    from mmengine.dist import get_rank

    if get_rank() != 0:
        return 0
    table = Table(title=f"ssld-zoo distill {Path(recipe.filename).stem}")
    table.add_column("model")
    table.add_column("top-1", justify="right")
    table.add_column("top-5", justify="right")
    for who, m in (("teacher", result.teacher_metrics), ("student", result.metrics)):
        if m:
            table.add_row(
                who, f"{m.get('top1', float('nan')):.2f}", f"{m.get('top5', float('nan')):.2f}"
            )
    if table.row_count:
        console.print(table)
    if result.export_path:
        console.print(
            f"student exported to [bold]{result.export_path}[/] (+ .json model card); "
            f"load it with ssld_zoo.load({spec_text(recipe['model']['student'])!r}, "
            f"weights={str(result.export_path)!r})"
        )
    return 0
