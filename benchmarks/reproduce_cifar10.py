"""SSLD's claims, reproduced on real data on a CPU: CIFAR-10 (../shared/data/cifar10).

    .venv/bin/python benchmarks/reproduce_cifar10.py [--data DIR] [--work-dir work_dirs/cifar10]
        [--jobs 2] [--threads N] [--arms a,b,c] [--seeds 0,1,2] [--force]
        [--plot docs/images/reproduction_cifar10.png]
        [--cfg-options KEY=VALUE ...]

Runs the recipes of ``recipes/cifar10/`` with ``ssld-zoo distill``, one process per arm:

* the teacher (ResNet18_vd) with labels on train (10k images);
* (a) the student (MobileNetV1_x0.5) with labels on train: the baseline;
* (b) the same student, SSLD without labels on train;
* (c) SSLD without labels on train + unlabeled (15k images), in as many steps as (a) and (b);
* (c+) the same for as many epochs as (b): the paper's comparison, 1.5x the steps;
* (d) a loss ablation on (c)'s data: KL at T=4, soft-target CE, the teacher's hard labels;
* fast distillation: (b) with the teacher's BatchNorm left unfolded (the online teacher as it
  was), and (b) from a teacher cache (``ssld-zoo label``, built once by this script: 32 views
  of each image, all 10 classes) using its first N = 1, 4, 16 or 32 views, and from a top-5
  cache with N = 32.

Then prints the table of docs/reproduction.md (also written to ``<work-dir>/results.md`` and
``results.json``), checks the targets (b >= a + 2, and c+ and c >= b + 1 points top-1 on val)
and saves a plot. The teacher runs alone on every core; the student arms then run ``--jobs`` at a
time, each on ``cores // jobs`` intra-op threads (these networks are too small for one process to
keep two cores busy). An arm whose export in the work dir was made by the arm's current recipe (its
model card records the config) is read, not re-run; a stale one, or one older than the teacher it
learnt from, is re-run (``--force`` re-runs all). ``--cfg-options`` goes to every arm (the tests
shrink the runs with it).

``--seeds 0,1,2`` runs the student arms once per seed, each in ``<work-dir>/seed<S>/`` with
``randomness.seed=S`` (initialisation, batch order) and the images' ``seed=S`` (augmentation,
so each seed builds its own cache), all from the one teacher in ``<work-dir>/teacher``, and
prints the mean, standard deviation and range of each arm over the seeds.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _reproduce  # noqa: E402
from _reproduce import (  # noqa: E402
    card_of,
    check_data,
    collect,
    driver_parser,
    markdown,
    run_cli,
    save_figure,
    select_arms,
)

# The cached arms' cache: N views of each image, the teacher's K most probable classes. All 10
# classes: with format 3 the rebuilt targets then equal the online teacher's to fp16.
CACHE_RECIPE, CACHE_VIEWS, CACHE_TOPK = "cifar10/ssld_cached", 32, 10


@dataclass(frozen=True)
class Arm(_reproduce.Arm):
    cache_topk: int = CACHE_TOPK  # classes kept by the cache a cached arm trains from

    @property
    def cache_dir(self) -> str:
        """The folder (in the work dir) of the cache this arm trains from."""
        if self.cache_topk == CACHE_TOPK:
            return "teacher_cache"
        return f"teacher_cache_top{self.cache_topk}"


ARMS = [
    Arm("teacher", "cifar10/teacher", "teacher ResNet18_vd", "train, labels", "CE"),
    Arm("a", "cifar10/supervised", "(a) supervised", "train, labels", "CE"),
    Arm("b", "cifar10/ssld", "(b) SSLD", "train, no labels", "symmetric KL"),
    Arm(
        "c",
        "cifar10/ssld_unlabeled",
        "(c) SSLD + unlabeled, (b)'s steps",
        "train + unlabeled, no labels",
        "symmetric KL",
    ),
    Arm(
        "c_epochs",
        "cifar10/ssld_unlabeled_equal_epochs",
        "(c+) SSLD + unlabeled, (b)'s epochs",
        "train + unlabeled, no labels",
        "symmetric KL",
    ),
    Arm("kl", "cifar10/ablation_kl", "(d) KL, T=4", "train + unlabeled, no labels", "KL (T=4)"),
    Arm(
        "soft_ce",
        "cifar10/ablation_soft_ce",
        "(d) soft-target CE",
        "train + unlabeled, no labels",
        "soft-target CE",
    ),
    Arm(
        "hard",
        "cifar10/ablation_hard",
        "(d) teacher's hard labels",
        "train + unlabeled, no labels",
        "CE on teacher arg-max",
    ),
    Arm(
        "b_unfolded",
        "cifar10/ssld",
        "(b) SSLD, teacher BatchNorm unfolded",
        "train, no labels",
        "symmetric KL",
        ("model.teacher.fold_bn=False", "model.teacher.channels_last=False"),
    ),
    *(
        Arm(
            f"cached_{n}",
            "cifar10/ssld_cached",
            f"(b) SSLD from the cache, N={n}",
            "train, no labels",
            "symmetric KL",
            (f"train_dataloader.dataset.views={n}",),
        )
        for n in (1, 4, 16, 32)
    ),
    Arm(
        "cached_32_top5",
        "cifar10/ssld_cached",
        "(b) SSLD from a top-5 cache, N=32",
        "train, no labels",
        "symmetric KL",
        ("train_dataloader.dataset.views=32",),
        cache_topk=5,
    ),
]
TEACHER_EXPORT = "cifar10_teacher.safetensors"


def seed_dir(work: Path, seed: int | None) -> Path:
    """Where the student arms (and their caches) of one seed live: the work dir itself without
    ``--seeds``."""
    return work if seed is None else work / f"seed{seed}"


def arm_parent(work: Path, arm: Arm, seed: int | None) -> Path:
    """The folder holding ``arm``'s work dir: the teacher is shared by every seed."""
    return work if arm.key == "teacher" else seed_dir(work, seed)


def default_data() -> Path:
    base = os.environ.get("SSLD_ZOO_TEST_DATA", str(ROOT.parent / "shared" / "data"))
    return Path(base) / "cifar10"


def arm_options(
    arm: Arm, data: Path, work: Path, extra: list[str], seed: int | None = None
) -> list[str]:
    """The ``--cfg-options`` of one arm: the data roots and teacher of this run, the seed of a
    student arm (initialisation, order and augmentation), then ``extra``."""
    images = "train_dataloader.dataset" + (".images" if arm.needs_cache else "")
    opts = [
        f"{images}.labeled_roots=['{data / 'train'}']",
        f"val_dataloader.dataset.labeled_roots=['{data / 'val'}']",
    ]
    if arm.unlabeled:
        opts.append(f"{images}.unlabeled_roots=['{data / 'unlabeled'}']")
    if arm.needs_teacher:
        opts.append(f"model.teacher.weights={work / 'teacher' / TEACHER_EXPORT}")
    if arm.needs_cache:
        cache = seed_dir(work, seed) / arm.cache_dir
        opts += [f"model.teacher_cache={cache}", f"train_dataloader.dataset.cache={cache}"]
    if seed is not None and arm.key != "teacher":
        opts += [f"randomness.seed={seed}", f"{images}.seed={seed}"]
    return opts + list(arm.options) + list(extra)


def build_cache(
    data: Path, work: Path, extra: list[str], seed: int | None = None, topk: int = CACHE_TOPK
) -> float:
    """Build (or finish, or just check) the top-``topk`` teacher cache of the cached arms with
    ``ssld-zoo label``; returns its wall seconds (also kept in ``<cache folder>.seconds``
    when it built anything)."""
    arm = next(a for a in ARMS if a.needs_cache and a.cache_topk == topk)
    opts = [
        o
        for o in arm_options(arm, data, work, extra, seed)
        if not o.startswith(("model.teacher_cache=", "train_dataloader.dataset.cache="))
    ]
    where = seed_dir(work, seed)
    out = where / arm.cache_dir
    args = ["label", str(ROOT / "recipes" / f"{CACHE_RECIPE}.py"), "--views", str(CACHE_VIEWS)]
    args += ["--topk", str(topk), "--out", str(out), "--cfg-options", *opts]
    manifest = out / "manifest.json"
    was_complete = manifest.is_file() and json.loads(manifest.read_text()).get("complete")
    where.mkdir(parents=True, exist_ok=True)
    seconds = run_cli(args, where / f"{arm.cache_dir}.log", "label")
    if not was_complete:
        (where / f"{arm.cache_dir}.seconds").write_text(f"{seconds:.1f}\n")
    return seconds


def arm_command(
    arm: Arm, data: Path, work: Path, extra: list[str], seed: int | None = None
) -> list[str]:
    """The ``ssld-zoo distill`` command of one arm (an argv list: no shell involved)."""
    return _reproduce.distill_command(
        arm, arm_parent(work, arm, seed), arm_options(arm, data, work, extra, seed)
    )


def stale_sections(
    arm: Arm, data: Path, work: Path, extra: list[str], seed: int | None = None
) -> list[str]:
    """The sections of ``arm``'s recipe (with this run's options) that its exported card does
    not match: [] when the export is current, ``["export"]`` when there is none."""
    options = arm_options(arm, data, work, extra, seed)
    return _reproduce.stale_sections(arm, arm_parent(work, arm, seed), options)


def run_arms(
    arms: list[Arm],
    data: Path,
    work: Path,
    jobs: int,
    threads: int,
    extra: list[str],
    seed: int | None = None,
) -> dict[str, float]:
    """Run ``arms`` ``jobs`` at a time; returns wall seconds per arm (kept with the CPU
    seconds in ``<work>/<arm>.seconds`` beside the export, for later reads)."""
    spent = _reproduce.run_arms(
        arms,
        lambda a: arm_command(a, data, work, extra, seed),
        lambda a: arm_parent(work, a, seed),
        jobs,
        threads,
    )
    return {k: wall for k, (wall, _) in spent.items()}


def targets(rows: list[dict]) -> list[tuple[str, float, float, bool]]:
    top = {r["key"]: r["top1"] for r in rows}
    out = []
    if "a" in top and "b" in top:
        out.append(
            ("(b) SSLD - (a) supervised", top["b"] - top["a"], 2.0, top["b"] - top["a"] >= 2.0)
        )
    for c, name in (
        ("c_epochs", "(c+) SSLD + unlabeled, (b)'s epochs"),
        ("c", "(c) SSLD + unlabeled, (b)'s steps"),
    ):
        if "b" in top and c in top:
            out.append((f"{name} - (b) SSLD", top[c] - top["b"], 1.0, top[c] - top["b"] >= 1.0))
    ref = "b" if "b" in top else "b_unfolded"
    for k in sorted((k for k in top if k.startswith("cached_")), key=_views_of):
        if ref in top:
            d = top[k] - top[ref]
            what = "a top-5 cache" if k.endswith("_top5") else "the cache"
            n = _views_of(k)
            out.append((f"(b) from {what}, N={n} - (b) online", d, -0.5, d >= -0.5))
    return out


def _views_of(key: str) -> int:
    """N of a cached arm's key (``cached_16``, ``cached_32_top5``)."""
    return int(key.split("_")[1])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {
        "teacher": "#7f7f7f",
        "a": "#d62728",
        "b": "#1f77b4",
        "c": "#2ca02c",
        "c_epochs": "#98df8a",
    }
    vals = [r["top1"] for r in rows]
    bars = ax1.barh(
        [r["label"] for r in rows][::-1],
        vals[::-1],
        color=[colors.get(r["key"], "#9467bd") for r in rows][::-1],
    )
    for b, v in zip(bars, vals[::-1]):
        ax1.text(v + 0.3, b.get_y() + b.get_height() / 2, f"{v:.1f}", va="center", fontsize=8)
    lo = min(vals) - 8
    ax1.set_xlim(max(0, lo), max(vals) + 4)
    ax1.set_xlabel("top-1 on CIFAR-10 val, 5,000 images (%)")
    ax1.set_title("SSLD on CIFAR-10 (CPU, recipes/cifar10)")
    ax1.tick_params(axis="y", labelsize=8)
    for r in rows:
        if r["history"] and r["steps"]:
            per_epoch = r["steps"] / r["epochs"]  # steps per epoch: the arms differ in both
            ax2.plot(
                [h["epoch"] * per_epoch for h in r["history"]],
                [h["top1"] for h in r["history"]],
                "o-",
                ms=3,
                color=colors.get(r["key"]),
                label=r["label"],
                alpha=1.0 if r["key"] in colors else 0.5,
            )
    ax2.set_xlabel("optimiser step")
    ax2.set_ylabel("val top-1 (%)")
    ax2.set_title("validation during training")
    ax2.legend(fontsize=7)
    save_figure(fig, path)


FAST_ARMS = (
    "b_unfolded",
    "b",
    "cached_1",
    "cached_4",
    "cached_16",
    "cached_32",
    "cached_32_top5",
)


def cache_minutes(work: Path) -> float | None:
    """Wall minutes of the teacher cache's build, when this work dir built one."""
    f = work / "teacher_cache.seconds"
    return float(f.read_text()) / 60 if f.is_file() else None


def fast_markdown(rows: list[dict], build_min: float | None) -> str:
    """The fast-distillation table: online, fast online and cached (b), top-1 and minutes."""
    by = {r["key"]: r for r in rows}
    keys = [k for k in FAST_ARMS if k in by]
    if not keys:
        return ""
    ref = by.get("b_unfolded", by.get("b"))
    out = [
        "| arm | views (N) | top-1 | vs online | training minutes | + cache build |",
        "|---|---|---|---|---|---|",
    ]
    for k in keys:
        r = by[k]
        n = k.split("_")[1] if k.startswith("cached_") else "online"
        build = f"{build_min:.1f}" if k.startswith("cached_") and build_min else ""
        out.append(
            f"| {r['label']} | {n} | {r['top1']:.2f} | {r['top1'] - ref['top1']:+.2f} "
            f"| {r['minutes']:.1f} | {build} |"
        )
    return "\n".join(out) + "\n"


def plot_fast(rows: list[dict], build_min: float | None, path: Path) -> None:
    """Val top-1 against wall-clock minutes (the cache's build counted at the start of every
    cached arm), and final top-1 against the number of stored views N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {r["key"]: r for r in rows}
    if not any(k in by for k in FAST_ARMS):
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k in FAST_ARMS:
        r = by.get(k)
        if r is None or not r["history"]:
            continue
        start = (build_min or 0.0) if k.startswith("cached_") else 0.0
        # validation epochs spread evenly over the arm's wall time (each epoch costs the same)
        t = [start + r["minutes"] * h["epoch"] / r["epochs"] for h in r["history"]]
        ax1.plot(t, [h["top1"] for h in r["history"]], "o-", ms=3, label=r["label"])
    ax1.set_xlabel("wall-clock minutes (2-core CPU; cached arms start after the build)")
    ax1.set_ylabel("val top-1 (%)")
    ax1.set_title("fast distillation on CIFAR-10: top-1 against time")
    ax1.legend(fontsize=7)
    cached = sorted(
        (_views_of(k), by[k]["top1"])
        for k in by
        if k.startswith("cached_") and not k.endswith("_top5")
    )
    if cached:
        ax2.plot([n for n, _ in cached], [v for _, v in cached], "o-", label="from the cache")
        ax2.set_xscale("log", base=2)
    for k, style in (("b", "--"), ("b_unfolded", ":")):
        if k in by:
            ax2.axhline(by[k]["top1"], ls=style, color="gray", label=by[k]["label"])
    ax2.set_xlabel(f"stored views per image N (top-{CACHE_TOPK} each)")
    ax2.set_ylabel("final val top-1 (%)")
    ax2.set_title("top-1 against N, equal steps")
    ax2.legend(fontsize=7)
    save_figure(fig, path)


def seed_markdown(by_seed: dict[int, list[dict]]) -> str:
    """One line per arm over the seeds: mean, standard deviation, range, each seed's top-1,
    and the mean's difference from online (b)."""
    import statistics

    seeds = sorted(by_seed)
    values: dict[str, dict[int, float]] = {}
    labels: dict[str, str] = {}
    for seed in seeds:
        for r in by_seed[seed]:
            values.setdefault(r["key"], {})[seed] = r["top1"]
            labels[r["key"]] = r["label"]
    mean = {k: statistics.fmean(v.values()) for k, v in values.items()}
    out = [
        "| arm | seeds | top-1 mean | std | min - max | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean vs (b) online |",
        "|---|---|---|---|---|" + "---|" * len(seeds) + "---|",
    ]
    for k, v in values.items():
        std = statistics.stdev(v.values()) if len(v) > 1 else float("nan")
        vs = f"{mean[k] - mean['b']:+.2f}" if "b" in mean and k != "b" else ""
        out.append(
            f"| {labels[k]} | {len(v)} | {mean[k]:.2f} | {std:.2f} | "
            f"{min(v.values()):.2f} - {max(v.values()):.2f} | "
            + " | ".join(f"{v[s]:.2f}" if s in v else "" for s in seeds)
            + f" | {vs} |"
        )
    return "\n".join(out) + "\n"


def plan(
    arms: list[Arm],
    teacher: Arm,
    data: Path,
    work: Path,
    extra: list[str],
    force: bool,
    seed: int | None = None,
) -> list[Arm]:
    """The arms to train, in order: those asked for without a current export; the teacher first
    when an arm asked for learns from it and its export is missing or stale, and then every arm
    asked for that learns from it (a new teacher makes their exports stale too)."""
    todo, teacher_file = [], work / "teacher" / TEACHER_EXPORT
    for arm in arms:
        if force:
            todo.append(arm)
            continue
        stale = stale_sections(arm, data, work, extra, seed)
        if (
            not stale
            and arm.needs_teacher
            and (
                not teacher_file.is_file()
                or teacher_file.stat().st_mtime
                > card_of(arm_parent(work, arm, seed), arm).stat().st_mtime
            )
        ):
            stale = ["the teacher"]
        if stale:
            todo.append(arm)
            if stale != ["export"]:
                print(f"{arm.key}: re-run ({', '.join(stale)} changed)", flush=True)
    if (
        teacher not in arms
        and any(a.needs_teacher for a in arms)
        and stale_sections(teacher, data, work, extra)
    ):
        todo.insert(0, teacher)
    if teacher in todo:
        todo = [teacher] + [a for a in arms if a is not teacher and (a.needs_teacher or a in todo)]
    return todo


def main(argv: list[str] | None = None) -> int:
    p = driver_parser(
        __doc__, ARMS, default_data(), "CIFAR-10 root with train/, val/, unlabeled/", "cifar10"
    )
    p.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds: run the student arms once per seed (see above)",
    )
    args = p.parse_args(argv)

    layout = "CIFAR-10's train/, val/ and unlabeled/ (see ../shared/data/README.md)"
    check_data(args.data, ("train", "val", "unlabeled"), layout)
    by_key = {a.key: a for a in ARMS}
    arms = select_arms(ARMS, args.arms)
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    extra = args.cfg_options  # appended to each arm's own --cfg-options (later keys win)
    try:
        seeds = [None] if args.seeds is None else [int(x) for x in args.seeds.split(",") if x]
    except ValueError:
        raise SystemExit(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    cores = os.cpu_count() or 1
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds: dict[str, float] = {}
    by_seed: dict[int, list[dict]] = {}
    for seed in seeds:
        todo = plan(arms, by_key["teacher"], args.data, work, extra, args.force, seed)
        if by_key["teacher"] in todo:
            seconds.update(run_arms([by_key["teacher"]], args.data, work, 1, cores, extra))
        students = [a for a in todo if a.key != "teacher"]
        for topk in sorted({a.cache_topk for a in students if a.needs_cache}):
            cache = seed_dir(work, seed) / next(
                a.cache_dir for a in ARMS if a.needs_cache and a.cache_topk == topk
            )
            if by_key["teacher"] in todo:  # a cache of the old teacher is refused: start afresh
                shutil.rmtree(cache, ignore_errors=True)
            build_cache(args.data, work, extra, seed, topk)
        if students:
            jobs = max(1, min(args.jobs, len(students)))
            threads = args.threads or max(1, cores // jobs)
            done = run_arms(students, args.data, work, jobs, threads, extra, seed)
            seconds.update({k if seed is None else f"{k}@seed{seed}": v for k, v in done.items()})
        if seed is not None:
            by_seed[seed] = collect([a for a in arms if a.key != "teacher"], seed_dir(work, seed))
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)

    rows = collect(arms if seeds == [None] else [a for a in arms if a.key == "teacher"], work)
    if by_seed:  # the first seed's runs stand for the arms in the per-run table and plots
        rows += by_seed[min(by_seed)]
    table = markdown(rows)
    if by_seed:
        table += "\n" + seed_markdown(by_seed)
    build_min = cache_minutes(work)
    fast = fast_markdown(rows, build_min)
    if fast:
        table += "\n" + fast
    checks = targets(rows)
    lines = [
        f"- {name}: {got:+.2f} points (target >= {want:+.1f}): {'met' if ok else 'NOT met'}"
        for name, got, want, ok in checks
    ]
    teacher_top1 = next((r["teacher_top1"] for r in rows if r["teacher_top1"]), None)
    summary = (
        f"This run: {len(seconds)} arm(s) trained in {wall / 60:.1f} min wall, "
        f"{cpu / 60:.1f} CPU-min ({cores} cores)"
        + (
            f"; the teacher's top-1 on val, as the SSLD arms measured it: {teacher_top1:.2f}"
            if teacher_top1
            else ""
        )
    )
    print("\n" + table + "\n" + "\n".join(lines) + "\n\n" + summary)
    (work / "results.md").write_text(table + "\n" + "\n".join(lines) + "\n\n" + summary + "\n")
    (work / "results.json").write_text(
        json.dumps(
            dict(
                rows=rows,
                by_seed={str(k): v for k, v in by_seed.items()},
                wall_s=wall,
                cpu_s=cpu,
                targets=checks,
            ),
            indent=1,
        )
        + "\n"
    )
    if rows:
        out = args.plot or work / "reproduction_cifar10.png"
        plot(rows, out)
        plot_fast(rows, build_min, out.with_name(out.stem + "_fast.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
