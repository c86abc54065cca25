"""SSLD's claims on real photos at an ImageNet-like resolution, on a CPU: Imagenette.

    .venv/bin/python benchmarks/reproduce_imagenette.py [--data DIR] [--work-dir DIR]
        [--jobs 2] [--threads N] [--arms a,b,...] [--per-class 200] [--views 12] [--force]
        [--plot docs/images/reproduction_imagenette.png] [--cfg-options KEY=VALUE ...]

``--data`` is any folder laid out like ``../shared/data/imagenette``: ``train/<class>/`` (labeled),
``pool/`` (unlabeled), ``val/<class>/``, and optionally ``pool_sources.tsv`` (``file<TAB>source``,
``imagenette`` for an in-distribution pool image), which measures how clean the mined set is.
The recipes of ``recipes/imagenette/`` run through ``ssld-zoo distill``, one process per arm:

* the teacher (ResNet18_vd) with labels on train;
* (a) the student (PP-LCNet_x0.5) with labels on train: the baseline;
* (b) the same student, SSLD without labels on train, the teacher run online;
* (b) from the teacher cache, at equal steps: what the cache costs in accuracy;
* (c) SSLD on train + the whole pool, (m) train + the pool mined by ``ssld-zoo mine`` (top
  ``--per-class`` per predicted class, near-duplicates of val removed by ``--exclude``), (r)
  train + a random subset of the pool (duplicates removed too) as large as (m)'s; these three
  train from the teacher cache, for as many epochs as (b) (the paper's protocol: more images,
  more steps; (m) and (r) take equal steps).

The cache (``ssld-zoo label``: ``--views`` views of every train and pool image, all classes kept)
is built once, after the teacher; ``mine`` reads the pool's scores from it. The script then prints
the table of docs/reproduction.md (also ``<work-dir>/results.md`` and ``results.json``), checks
the targets and saves a plot. It resumes: an arm whose export was made by its current recipe and
options, after the teacher, cache and list it learnt from, is read back, not re-run.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _reproduce import (  # noqa: E402
    Arm,
    card_of,
    check_data,
    collect,
    distill_command,
    driver_parser,
    markdown,
    run_arms,
    run_cli,
    save_figure,
    select_arms,
    stale_sections,
)

from ssld_zoo.distill.mining import duplicates_path  # noqa: E402

SSLD = "symmetric KL"
ARMS = [
    Arm("teacher", "imagenette/teacher", "teacher ResNet18_vd", "train, labels", "CE"),
    Arm("a", "imagenette/supervised", "(a) supervised", "train, labels", "CE"),
    Arm("b", "imagenette/ssld", "(b) SSLD, online teacher", "train, no labels", SSLD),
    Arm("b_cached", "imagenette/ssld_cached", "(b) SSLD from the cache", "train, no labels", SSLD),
    Arm("c", "imagenette/ssld_cached", "(c) SSLD + the whole pool", "train + pool", SSLD),
    Arm("m", "imagenette/ssld_cached", "(m) SSLD + the mined pool", "train + mined", SSLD),
    Arm("r", "imagenette/ssld_cached", "(r) SSLD + a random pool subset", "train + random", SSLD),
]
TEACHER_EXPORT = "imagenette_teacher.safetensors"
TEACHER_ARCH = "resnet18_vd"  # recipes/imagenette/teacher.py's student


def default_data() -> Path:
    base = os.environ.get("SSLD_ZOO_TEST_DATA", str(ROOT.parent / "shared" / "data"))
    return Path(base) / "imagenette"


class Run:
    """One reproduction: the data folder, the work dir and the options every arm gets."""

    def __init__(self, data: Path, work: Path, extra: list[str]):
        self.data, self.work, self.extra = data, work, extra
        self.teacher = work / "teacher" / TEACHER_EXPORT
        self.cache = work / "teacher_cache"
        self.mined = work / "mined.tsv"
        self.random = work / "random.tsv"
        self.duplicates = duplicates_path(self.mined)  # what mine --exclude dropped

    def pool_root(self, arm: Arm) -> Path | None:
        """The unlabeled root an arm adds to train: the pool, the mined or the random list."""
        return {"c": self.data / "pool", "m": self.mined, "r": self.random}.get(arm.key)

    def options(self, arm: Arm, cache: bool = True) -> list[str]:
        """The ``--cfg-options`` of one arm: this run's data, teacher and cache, then the
        arm's own options and the run's ``--cfg-options`` (later keys win)."""
        images = "train_dataloader.dataset" + (".images" if arm.needs_cache else "")
        opts = [
            f"{images}.labeled_roots=['{self.data / 'train'}']",
            f"val_dataloader.dataset.labeled_roots=['{self.data / 'val'}']",
        ]
        pool = self.pool_root(arm)
        if pool is not None:
            opts.append(f"{images}.unlabeled_roots=['{pool}']")
        if arm.needs_teacher:
            opts.append(f"model.teacher.weights={self.teacher}")
        if arm.needs_cache and cache:
            opts += [
                f"model.teacher_cache={self.cache}",
                f"train_dataloader.dataset.cache={self.cache}",
            ]
        return opts + list(arm.options) + list(self.extra)

    def inputs(self, arm: Arm) -> list[Path]:
        """Files an arm learnt from: its export must be newer than each."""
        files = [self.teacher] if arm.needs_teacher else []
        if arm.needs_cache:
            files.append(self.cache / "manifest.json")
        if arm.key in ("m", "r"):
            files.append(self.pool_root(arm))
        return files

    def stale(self, arm: Arm) -> list[str]:
        """Why ``arm`` must (re-)run: its changed sections, or the inputs newer than its export."""
        why = stale_sections(arm, self.work, self.options(arm))
        if not why:
            card = card_of(self.work, arm).stat().st_mtime
            why = [f.name for f in self.inputs(arm) if not f.is_file() or f.stat().st_mtime > card]
        return why

    def train(
        self, arms: list[Arm], jobs: int, threads: int, resume: set[str]
    ) -> dict[str, tuple[float, float]]:
        """Run ``arms`` (those in ``resume`` from their last checkpoint): (wall, CPU) s each."""
        return run_arms(
            arms,
            lambda a: distill_command(a, self.work, self.options(a), a.key in resume),
            lambda a: self.work,
            jobs,
            threads,
        )

    def start(self, arm: Arm, why: list[str]) -> set[str]:
        """Prepare ``arm``'s work dir for a run: an arm interrupted before its export resumes
        from its last checkpoint (returns ``{arm.key}``); one whose recipe, options or inputs
        changed starts afresh (its old checkpoints are removed)."""
        print(f"{arm.key}: run ({', '.join(why)})", flush=True)
        if why == ["export"]:
            return {arm.key}
        shutil.rmtree(self.work / arm.key, ignore_errors=True)
        return set()

    def build_cache(self, views: int) -> float:
        """The teacher on ``views`` stored views of every train and pool image (all classes
        kept: the CIFAR-10 study in docs/distillation.md). Returns wall seconds."""
        arm = next(a for a in ARMS if a.key == "b_cached")
        opts = self.options(arm, cache=False) + [
            f"train_dataloader.dataset.images.unlabeled_roots=['{self.data / 'pool'}']"
        ]
        args = ["label", str(ROOT / "recipes" / f"{arm.recipe}.py"), "--views", str(views)]
        args += ["--topk", "10", "--out", str(self.cache), "--cfg-options", *opts]
        return run_cli(args, self.work / "teacher_cache.log", "label")

    def mine(self, per_class: int) -> float:
        """``ssld-zoo mine`` over the pool from the cache's scores, near-duplicates of val
        dropped, then the random list of the same size. Returns wall seconds."""
        args = ["mine", "--teacher", TEACHER_ARCH, "--weights", str(self.teacher)]
        args += ["--pool", str(self.data / "pool"), "--per-class", str(per_class)]
        args += ["--cache", str(self.cache), "--out", str(self.mined)]
        args += ["--exclude", str(self.data / "val")]  # the paper's step: no copy of val
        seconds = run_cli(args, self.work / "mine.log", "mine")
        mined = read_list(self.mined)
        dropped = set(read_list(self.duplicates)) if self.duplicates.is_file() else set()
        pool = sorted(
            str(p) for p in (self.data / "pool").iterdir() if p.is_file() and str(p) not in dropped
        )
        chosen = sorted(random.Random(0).sample(pool, len(mined)))
        tmp = self.random.with_name(self.random.name + ".partial")
        tmp.write_text(
            "# a random subset of the pool, as large as mined.tsv (seed 0)\n"
            + "".join(f"{p}\n" for p in chosen)
        )
        tmp.replace(self.random)
        return seconds


def read_list(path: Path) -> list[str]:
    """The image paths of a list file (first tab-separated column, # comments skipped)."""
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    return [ln.split("\t")[0] for ln in lines if ln.strip() and not ln.startswith("#")]


def pool_purity(data: Path, lists: dict[str, Path]) -> dict[str, dict]:
    """For each list: its size and the share of its images that ``pool_sources.tsv`` marks
    ``imagenette`` (in-distribution); {} without that file."""
    src = data / "pool_sources.tsv"
    if not src.is_file():
        return {}
    rows = [ln.split("\t") for ln in src.read_text().splitlines()[1:] if ln.strip()]
    inside = {name for name, source in rows if source == "imagenette"}
    out = {"pool": dict(images=len(rows), in_distribution=100.0 * len(inside) / len(rows))}
    for key, path in lists.items():
        if path.is_file():
            names = [Path(p).name for p in read_list(path)]
            share = 100.0 * sum(n in inside for n in names) / max(1, len(names))
            out[key] = dict(images=len(names), in_distribution=share)
    return out


def targets(rows: list[dict], purity: dict) -> list[tuple[str, float, float, bool]]:
    """The issue's targets that this run's rows can check: (name, got, want, met)."""
    top = {r["key"]: r["top1"] for r in rows}
    out = []

    def diff(x: str, y: str, want: float, name: str, strict: bool = False) -> None:
        if x in top and y in top:
            d = top[x] - top[y]
            out.append((name, d, want, d > want if strict else d >= want))

    diff("b", "a", 2.0, "(b) SSLD - (a) supervised")
    diff("m", "b", 1.0, "(m) SSLD + mined - (b) SSLD")
    diff("m", "r", 0.0, "(m) mined - (r) random, same size", strict=True)
    diff("b_cached", "b", -0.5, "(b) from the cache - (b) online")
    if "mined" in purity:
        share = purity["mined"]["in_distribution"]
        out.append(("mined set in-distribution (%)", share, 90.0, share >= 90.0))
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    vals = [r["top1"] for r in rows]
    bars = ax1.barh([r["label"] for r in rows][::-1], vals[::-1], color="#1f77b4")
    for b, v in zip(bars, vals[::-1]):
        ax1.text(v + 0.3, b.get_y() + b.get_height() / 2, f"{v:.1f}", va="center", fontsize=8)
    ax1.set_xlim(max(0, min(vals) - 8), max(vals) + 4)
    ax1.set_xlabel("top-1 on Imagenette val, 1,966 photos (%)")
    ax1.set_title("SSLD on Imagenette, 112-px crops (CPU, recipes/imagenette)")
    ax1.tick_params(axis="y", labelsize=8)
    for r in rows:
        if r["history"] and r["steps"]:
            per_epoch = r["steps"] / r["epochs"]
            x = [h["epoch"] * per_epoch for h in r["history"]]
            ax2.plot(x, [h["top1"] for h in r["history"]], "o-", ms=3, label=r["label"])
    ax2.set_xlabel("optimiser step")
    ax2.set_ylabel("val top-1 (%)")
    ax2.set_title("validation during training")
    ax2.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = driver_parser(
        __doc__, ARMS, default_data(), "folder with train/, pool/, val/", "imagenette"
    )
    p.add_argument("--per-class", type=int, default=200, help="images mined per class (K)")
    p.add_argument(
        "--views",
        type=int,
        default=12,
        help="views per image in the teacher cache (>= the arms' epochs)",
    )
    args = p.parse_args(argv)

    layout = "train/<class>/, pool/ and val/<class>/ (see ../shared/data/README.md, imagenette)"
    check_data(args.data, ("train", "pool", "val"), layout)
    by_key = {a.key: a for a in ARMS}
    arms = select_arms(ARMS, args.arms)
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    run = Run(args.data.resolve(), work, args.cfg_options)
    teacher = by_key["teacher"]
    cores = os.cpu_count() or 1
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    spent: dict[str, tuple[float, float]] = {}

    students = [a for a in arms if a is not teacher]
    if teacher in arms or any(a.needs_teacher or a.needs_cache for a in students):
        why = ["--force"] if args.force and teacher in arms else run.stale(teacher)
        if why:
            spent.update(run.train([teacher], 1, cores, run.start(teacher, why)))
            # what was learnt from the old teacher goes with it
            shutil.rmtree(run.cache, ignore_errors=True)
            for f in (run.mined, Path(str(run.mined) + ".scores.tsv"), run.random):
                f.unlink(missing_ok=True)
    if any(a.needs_cache for a in students):
        manifest = run.cache / "manifest.json"
        if not (manifest.is_file() and json.loads(manifest.read_text()).get("complete")):
            spent["cache"] = (run.build_cache(args.views), float("nan"))
    if any(a.key in ("m", "r") for a in students) and not (
        run.mined.is_file() and run.random.is_file()
    ):
        spent["mine"] = (run.mine(args.per_class), float("nan"))

    todo, resume = [], set()
    for arm in students:
        why = ["--force"] if args.force else run.stale(arm)
        if why:
            todo.append(arm)
            resume |= run.start(arm, why)
    if todo:
        jobs = max(1, min(args.jobs, len(todo)))
        threads = args.threads or max(1, cores // jobs)
        spent.update(run.train(todo, jobs, threads, resume))
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)

    rows = collect(arms, work)
    purity = pool_purity(
        run.data,
        {"mined": run.mined, "random": run.random, "dropped as copies of val": run.duplicates},
    )
    table = markdown(rows)
    if purity:
        table += "\n| set | images | in-distribution (%) |\n|---|---|---|\n" + "".join(
            f"| {k} | {v['images']:,} | {v['in_distribution']:.1f} |\n" for k, v in purity.items()
        )
    checks = targets(rows, purity)
    lines = [
        f"- {name}: {got:+.2f} (target {'>' if name.startswith('(m) mined') else '>='} "
        f"{want:+.1f}): {'met' if ok else 'NOT met'}"
        for name, got, want, ok in checks
    ]
    summary = (
        f"This call: {len(spent)} step(s) in {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min "
        f"({cores} cores): " + ", ".join(f"{k} {w / 60:.1f} min" for k, (w, _) in spent.items())
    )
    report = table + "\n" + "\n".join(lines) + "\n\n" + summary + "\n"
    print("\n" + report)
    (work / "results.md").write_text(report)
    (work / "results.json").write_text(
        json.dumps(
            dict(
                rows=rows,
                purity=purity,
                targets=checks,
                wall_s=wall,
                cpu_s=cpu,
                steps={k: list(v) for k, v in spent.items()},
            ),
            indent=1,
        )
        + "\n"
    )
    if rows:
        plot(rows, args.plot or work / "reproduction_imagenette.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
