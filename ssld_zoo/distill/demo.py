"""``ssld-zoo demo``: SSLD end to end on scikit-learn's bundled handwritten digits, on CPU.

1,797 real 8x8 scans ship inside scikit-learn, so the demo needs no download. They are written
as PNG files (ImageFolder trees and a folder of unlabeled images) and then go through the real
engine: the same ``run_distill``, Distiller, losses, data pipeline, checkpoints and export as
``ssld-zoo distill``. Three runs:

1. the teacher, trained with labels on 1,397 digits;
2. the baseline student, trained with labels on only ``labeled_per_class`` x 10 of them;
3. the SSLD student (same architecture, same init), trained without any label on those same
   images plus the other ~1,300 as unlabeled images, from the teacher's predictions
   (``teacher=dict(weights=<teacher export>)``: the export -> load round trip is exercised too).

All three are scored on 400 held-back digits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["DemoConfig", "DemoResult", "DemoArm", "prepare_digits", "run_demo", "plot_demo"]


@dataclass
class DemoConfig:
    """Sizes of the demo. ``quick()`` is the shortened mode of the tests."""

    teacher: str = "resnet18_vd"
    student: str = "mobilenetv1_x0_25"
    input_size: int = 32
    test_size: int = 400
    labeled_per_class: int = 10
    teacher_epochs: int = 5
    baseline_epochs: int = 60
    ssld_epochs: int = 12
    batch_size: int = 64
    baseline_batch_size: int = 25
    # lr 0.05 and crops of 80-100% of the 8x8-pixel digit: the teacher reaches 99% in 5
    # epochs (lr 0.1 with 60-100% crops: 82%).
    lr: float = 0.05
    crop_scale: tuple[float, float] = (0.8, 1.0)
    seed: int = 0
    val_points: int = 6  # validations per run (for the plot)
    # These models are tiny: one intra-op thread is as fast, and a second one spin-waits badly
    # whenever another process shares the cores (measured 10-50x slower on a 2-core machine).
    threads: int = 1

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(teacher_epochs=1, baseline_epochs=2, ssld_epochs=1, val_points=1)


@dataclass
class DemoArm:
    """One trained model of the demo."""

    name: str
    arch: str
    labels_used: int
    images_seen: int
    top1: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    export_path: Path | None = None


@dataclass
class DemoResult:
    arms: list[DemoArm]
    work_dir: Path
    plot_path: Path | None
    seconds: float
    config: DemoConfig

    def arm(self, name: str) -> DemoArm:
        return next(a for a in self.arms if a.name == name)


def prepare_digits(root: Path, cfg: DemoConfig) -> dict[str, Any]:
    """Write the digits as PNGs: ``teacher_train/<d>/``, ``labeled/<d>/``, ``unlabeled/`` and
    ``test/<d>/``; return their paths and counts."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    idx = np.arange(len(images))
    train_idx, test_idx = train_test_split(
        idx, test_size=cfg.test_size, random_state=cfg.seed, stratify=digits.target
    )
    rng = np.random.default_rng(cfg.seed)
    train_idx = rng.permutation(train_idx)
    labeled = np.concatenate(
        [train_idx[digits.target[train_idx] == c][: cfg.labeled_per_class] for c in range(10)]
    )
    unlabeled = np.setdiff1d(train_idx, labeled)
    roots = {k: root / k for k in ("teacher_train", "labeled", "unlabeled", "test")}
    marker = root / ".complete"
    if not marker.exists():
        for split, ids, with_class in (
            ("teacher_train", train_idx, True),
            ("labeled", labeled, True),
            ("unlabeled", unlabeled, False),
            ("test", test_idx, True),
        ):
            for i in ids:
                folder = roots[split] / str(digits.target[i]) if with_class else roots[split]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[i], "L").convert("RGB").save(folder / f"{i:04d}.png")
        marker.write_text("ok\n")
    return {
        "roots": {k: str(v) for k, v in roots.items()},
        "counts": {
            "teacher_train": len(train_idx),
            "labeled": len(labeled),
            "unlabeled": len(unlabeled),
            "test": len(test_idx),
        },
    }


def _recipe(
    cfg: DemoConfig,
    roots: dict,
    *,
    student: str,
    teacher: dict | None,
    labeled: list[str],
    unlabeled: list[str],
    epochs: int,
    batch: int,
    hard: float,
    name: str,
) -> dict:
    from ssld_zoo.distill.recipes import compose_recipe

    size = cfg.input_size
    images = dict(type="ImageDataset", classes=[str(c) for c in range(10)], seed=cfg.seed)
    loader = dict(num_workers=0, persistent_workers=False, collate_fn=dict(type="collate_images"))
    warmup = 1 if epochs > 2 else 0
    recipe = dict(
        description=f"ssld-zoo demo: {name}",
        model=dict(
            teacher=teacher,
            student=dict(type="ZooModel", name=student, pretrained=False, num_classes=10),
            loss=dict(type="SymmetricKL"),
            hard_label_weight=hard,
        ),
        train_dataloader=dict(
            batch_size=batch,
            drop_last=True,
            **loader,
            sampler=dict(type="EpochIndexSampler", shuffle=True),
            dataset=dict(
                **images,
                labeled_roots=labeled,
                unlabeled_roots=unlabeled,
                # digits are not mirror-symmetric: no flips
                transform=dict(
                    type="TrainViewTransform",
                    input_size=size,
                    resize=size,
                    scale=cfg.crop_scale,
                    ratio=(0.8, 1.25),
                    hflip=0.0,
                ),
            ),
        ),
        val_dataloader=dict(
            batch_size=200,
            **loader,
            sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
            dataset=dict(
                **images,
                labeled_roots=[roots["test"]],
                transform=dict(type="ResizeCenterCrop", input_size=size, resize=size),
            ),
        ),
        val_evaluator=dict(type="TopKAccuracy"),
        val_cfg=dict(),
        optim_wrapper=dict(
            type="auto_amp_optim_wrapper",
            optimizer=dict(type="SGD", lr=cfg.lr, momentum=0.9, weight_decay=5e-4, nesterov=True),
        ),
        param_scheduler=[
            dict(
                type="LinearLR",
                start_factor=0.01,
                by_epoch=True,
                begin=0,
                end=warmup,
                convert_to_iter_based=True,
            )
        ]
        * bool(warmup)
        + [
            dict(
                type="CosineAnnealingLR",
                eta_min=0.0,
                by_epoch=True,
                begin=warmup,
                convert_to_iter_based=True,
            )
        ],
        train_cfg=dict(
            type="SkipEmptyBatchTrainLoop",
            max_epochs=epochs,
            val_interval=max(1, epochs // max(cfg.val_points, 1)),
        ),
        default_hooks=dict(
            checkpoint=dict(interval=epochs, max_keep_ckpts=1), logger=dict(interval=10)
        ),
        randomness=dict(seed=cfg.seed),
        visualizer=dict(vis_backends=[dict(type="LocalVisBackend")]),
        export=dict(name=name),
    )
    return compose_recipe(recipe, f"demo_{name}.py")


def run_demo(
    work_dir: str | Path,
    cfg: DemoConfig | None = None,
    on_stage: Callable[[str], None] | None = None,
    plot: bool = True,
    extra_hooks: Callable[[str], list] | None = None,
) -> DemoResult:
    """Run the three trainings in ``work_dir`` and return their top-1 on the held-back digits."""
    cfg = cfg or DemoConfig()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run_demo(Path(work_dir), cfg, on_stage, plot, extra_hooks)
    finally:
        torch.set_num_threads(threads)


def _run_demo(work_dir: Path, cfg: DemoConfig, on_stage, plot: bool, extra_hooks) -> DemoResult:
    from ssld_zoo.distill.runner import run_distill

    t0 = time.perf_counter()
    data = prepare_digits(work_dir / "data", cfg)
    roots, counts = data["roots"], data["counts"]
    say = on_stage or (lambda s: None)
    hooks = extra_hooks or (lambda s: [])
    arms: list[DemoArm] = []

    def train(name: str, recipe: dict, labels: int, images: int, arch: str) -> DemoArm:
        say(name)
        t = time.perf_counter()
        res = run_distill(recipe, work_dir / name, extra_hooks=hooks(name), log_level="ERROR")
        arm = DemoArm(
            name,
            arch,
            labels,
            images,
            res.metrics.get("top1", float("nan")),
            time.perf_counter() - t,
            res.history,
            res.export_path,
        )
        arms.append(arm)
        return arm

    teacher = train(
        "teacher",
        _recipe(
            cfg,
            roots,
            student=cfg.teacher,
            teacher=None,
            labeled=[roots["teacher_train"]],
            unlabeled=[],
            epochs=cfg.teacher_epochs,
            batch=cfg.batch_size,
            hard=1.0,
            name="teacher",
        ),
        counts["teacher_train"],
        counts["teacher_train"],
        cfg.teacher,
    )
    train(
        "baseline",
        _recipe(
            cfg,
            roots,
            student=cfg.student,
            teacher=None,
            labeled=[roots["labeled"]],
            unlabeled=[],
            epochs=cfg.baseline_epochs,
            batch=cfg.baseline_batch_size,
            hard=1.0,
            name="baseline",
        ),
        counts["labeled"],
        counts["labeled"],
        cfg.student,
    )
    train(
        "ssld",
        _recipe(
            cfg,
            roots,
            student=cfg.student,
            teacher=dict(
                type="ZooModel", name=cfg.teacher, weights=str(teacher.export_path), num_classes=10
            ),
            labeled=[roots["labeled"]],
            unlabeled=[roots["unlabeled"]],
            epochs=cfg.ssld_epochs,
            batch=cfg.batch_size,
            hard=0.0,
            name="ssld",
        ),
        0,
        counts["labeled"] + counts["unlabeled"],
        cfg.student,
    )
    result = DemoResult(arms, work_dir, None, time.perf_counter() - t0, cfg)
    if plot:
        result.plot_path = plot_demo(result, work_dir / "ssld_demo.png")
    result.seconds = time.perf_counter() - t0
    return result


def plot_demo(result: DemoResult, path: Path) -> Path:
    """Bar chart of the three top-1s and their validation curves, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    labels = {
        "teacher": "teacher (all labels)",
        "baseline": "student, labels only",
        "ssld": "student, SSLD (no labels)",
    }
    colors = {"teacher": "#7f7f7f", "baseline": "#d62728", "ssld": "#2ca02c"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [a.name for a in result.arms]
    vals = [a.top1 for a in result.arms]
    bars = ax1.bar([labels[n] for n in names], vals, color=[colors[n] for n in names])
    for b, v in zip(bars, vals):
        ax1.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.1f}", ha="center")
    ax1.set_ylim(0, 105)
    ax1.set_ylabel("top-1 on 400 held-back digits (%)")
    ax1.set_title("SSLD on scikit-learn digits")
    ax1.tick_params(axis="x", labelsize=8)
    for a in result.arms:
        pts = [(h["epoch"], h["top1"]) for h in a.history if "top1" in h]
        if pts:
            e, t = zip(*pts)
            ax2.plot(e, t, "o-", color=colors[a.name], label=labels[a.name])
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("top-1 (%)")
    ax2.set_title("validation during training")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
