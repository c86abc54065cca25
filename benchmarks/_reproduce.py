"""What the reproduction drivers (reproduce_cifar10.py, reproduce_imagenette.py) share: an arm
is one recipe run by ``ssld-zoo distill`` in its own process; an arm whose export was made by its
current recipe and options is read back, not re-run; the results become one markdown table."""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Arm:
    key: str
    recipe: str  # under recipes/
    label: str
    data: str  # what it trains on
    loss: str
    options: tuple[str, ...] = ()  # --cfg-options of this arm (before the run's own)

    @functools.cached_property
    def _recipe(self) -> dict:
        from ssld_zoo.distill.recipes import load_recipe

        return load_recipe(self.recipe)

    @property
    def unlabeled(self) -> bool:
        """The recipe reads an unlabeled root."""
        from ssld_zoo.distill.recipes import train_images_cfg

        return bool(train_images_cfg(self._recipe)["unlabeled_roots"])

    @property
    def needs_teacher(self) -> bool:
        return self._recipe["model"].get("teacher") is not None

    @property
    def needs_cache(self) -> bool:
        """The arm trains from a teacher cache (``ssld-zoo label``)."""
        return bool(self._recipe["model"].get("teacher_cache"))


def distill_command(arm: Arm, work: Path, options: list[str], resume: bool = False) -> list[str]:
    """The ``ssld-zoo distill`` command of one arm (an argv list: no shell involved); with
    ``resume``, from the latest checkpoint of its work dir if there is one."""
    return [
        sys.executable,
        "-m",
        "ssld_zoo.cli.main",
        "distill",
        str(ROOT / "recipes" / f"{arm.recipe}.py"),
        "--work-dir",
        str(work / arm.key),
        "--no-progress",
        *(["--resume", "--allow-fresh"] if resume else []),
        "--cfg-options",
        *options,
    ]


def card_of(work: Path, arm: Arm) -> Path | None:
    cards = sorted((work / arm.key).glob("*.safetensors.json"))
    return cards[0] if cards else None


def stale_sections(arm: Arm, work: Path, options: list[str]) -> list[str]:
    """The sections of ``arm``'s recipe (with ``options``) that its exported card does not
    match: [] when the export is current, ``["export"]`` when there is none."""
    from mmengine.config import DictAction

    from ssld_zoo.distill.recipes import load_recipe
    from ssld_zoo.distill.runner import recipe_record

    path = card_of(work, arm)
    if path is None:
        return ["export"]
    parser = argparse.ArgumentParser()
    parser.add_argument("--o", nargs="+", action=DictAction, default={})
    recipe = load_recipe(arm.recipe, parser.parse_args(["--o", *options]).o)
    # Through JSON, as the card went: tuples become lists.
    want = json.loads(json.dumps(recipe_record(recipe), default=str))
    have = json.loads(path.read_text()).get("training", {})
    out = []
    for key, exp in want.items():
        got = have.get(key)
        if key == "data" and isinstance(got, dict):
            # The card adds image counts, and resolves classes=None to the folders' names.
            got = {k: (None if k == "classes" and exp[k] is None else got.get(k)) for k in exp}
        if got != exp:
            out.append(key)
    return out


def run_arms(
    arms: list[Arm],
    command: Callable[[Arm], list[str]],
    where: Callable[[Arm], Path],
    jobs: int,
    threads: int,
) -> dict[str, tuple[float, float]]:
    """Run ``command(arm)`` for each of ``arms``, ``jobs`` at a time, each on ``threads``
    intra-op threads, its log in ``where(arm)/<key>.log``; returns ``{key: (wall s, CPU s)}``
    (also kept in ``where(arm)/<key>.seconds`` beside the export, for later reads). Fails
    naming the logs."""
    pending, running, spent = list(arms), {}, {}
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    failed = []
    while pending or running:
        while pending and len(running) < jobs:
            arm = pending.pop(0)
            folder = where(arm)
            (folder / arm.key).mkdir(parents=True, exist_ok=True)
            log = open(folder / f"{arm.key}.log", "w")
            cmd = command(arm)
            print(
                f"[{time.strftime('%H:%M:%S')}] start {arm.key} ({threads} thread(s)): "
                f"{' '.join(cmd[1:])}",
                flush=True,
            )
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            running[arm.key] = (proc, log, time.perf_counter(), folder)
        time.sleep(1.0)
        for key, (proc, log, t0, folder) in list(running.items()):
            # wait4 reaps the child and gives its own CPU time (the arms overlap)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == 0:
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            log.close()
            wall, cpu = time.perf_counter() - t0, usage.ru_utime + usage.ru_stime
            spent[key] = (wall, cpu)
            del running[key]
            if proc.returncode == 0:
                (folder / f"{key}.seconds").write_text(f"{wall:.1f} {cpu:.1f}\n")
            state = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(
                f"[{time.strftime('%H:%M:%S')}] {key} {state} in {wall / 60:.1f} min "
                f"({cpu / 60:.1f} CPU-min; log: {folder / f'{key}.log'})",
                flush=True,
            )
            if proc.returncode:
                failed.append(f"{folder / key}.log")
    if failed:
        raise SystemExit(f"arm(s) failed; see {', '.join(failed)}")
    return spent


def saved_seconds(work: Path, key: str) -> tuple[float, float]:
    """(wall, CPU) seconds of the run that made ``key``'s export (CPU: nan if not recorded)."""
    f = work / f"{key}.seconds"
    if not f.is_file():
        return float("nan"), float("nan")
    vals = [float(v) for v in f.read_text().split()]
    return vals[0], (vals[1] if len(vals) > 1 else float("nan"))


def collect(arms: list[Arm], work: Path) -> list[dict]:
    """One row per arm with an export: its card's data, schedule and metrics."""
    rows = []
    for arm in arms:
        path = card_of(work, arm)
        if path is None:
            continue
        card = json.loads(path.read_text())
        tr = card.get("training", {})
        m = tr.get("metrics", {})
        wall, cpu = saved_seconds(work, arm.key)
        d = tr.get("data", {})
        rows.append(
            dict(
                key=arm.key,
                label=arm.label,
                recipe=f"recipes/{arm.recipe}.py",
                data=arm.data,
                loss=arm.loss,
                arch=card.get("arch"),
                images=d.get("num_images"),
                labels_used=d.get("num_labeled") if tr.get("hard_label_weight", 0) > 0 else 0,
                epochs=tr.get("max_epochs"),
                # optimiser steps: full batches only (the train loader drops the last one); a
                # cached image brings crops_per_image views of the global batch
                steps=(
                    d["num_images"]
                    // (tr["batch_size"] // d.get("crops_per_image", 1))
                    * tr["max_epochs"]
                    if tr.get("batch_size")
                    else None
                ),
                top1=m.get("top1"),
                top5=m.get("top5"),
                teacher_top1=tr.get("teacher_metrics", {}).get("top1"),
                minutes=wall / 60,
                cpu_minutes=cpu / 60,
                history=[h for h in tr.get("history", []) if "top1" in h],
            )
        )
    return rows


def markdown(rows: list[dict]) -> str:
    """The results table; ``vs (a)`` is each arm's top-1 minus the supervised baseline's."""
    base = next((r["top1"] for r in rows if r["key"] == "a"), None)
    out = [
        "| arm | student | trained on | loss | images | labels | steps | top-1 | top-5 "
        "| vs (a) | minutes | CPU-min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        delta = "" if base is None or r["key"] in ("a", "teacher") else f"{r['top1'] - base:+.2f}"
        steps = "?" if r["steps"] is None else f"{r['steps']:,}"  # cards older than v2
        cpu = "" if r["cpu_minutes"] != r["cpu_minutes"] else f"{r['cpu_minutes']:.1f}"
        out.append(
            f"| {r['label']} | {r['arch']} | {r['data']} | {r['loss']} | {r['images']:,} "
            f"| {r['labels_used']:,} | {steps} | {r['top1']:.2f} | {r['top5']:.2f} "
            f"| {delta} | {r['minutes']:.1f} | {cpu} |"
        )
    return "\n".join(out) + "\n"


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure to ``path`` atomically (temp file, then rename) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def run_cli(args: list[str], log: Path, what: str) -> float:
    """Run ``ssld-zoo ARGS`` with its output in ``log``; returns wall seconds, fails naming the
    log."""
    cmd = [sys.executable, "-m", "ssld_zoo.cli.main", *args]
    print(f"[{time.strftime('%H:%M:%S')}] {what}: {' '.join(cmd[1:])}", flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if code:
        raise SystemExit(f"ssld-zoo {args[0]} failed (exit {code}); see {log}")
    seconds = time.perf_counter() - t0
    print(f"[{time.strftime('%H:%M:%S')}] {what} done in {seconds / 60:.1f} min", flush=True)
    return seconds


def driver_parser(
    doc: str, arms: list[Arm], data: Path, data_help: str, name: str
) -> argparse.ArgumentParser:
    """A reproduction driver's command line: --data, --work-dir (``work_dirs/<name>``),
    --jobs, --threads, --arms, --force, --plot, --cfg-options; the driver adds its own."""
    p = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc.split("\n", 1)[1],
    )
    p.add_argument("--data", type=Path, default=data, help=f"{data_help} (default: %(default)s)")
    p.add_argument("--work-dir", type=Path, default=ROOT / "work_dirs" / name)
    p.add_argument("--jobs", type=int, default=2, help="student arms run at once")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads of each student arm (default: cores // jobs)",
    )
    keys = ", ".join(a.key for a in arms)
    p.add_argument("--arms", default=",".join(a.key for a in arms), help=f"subset of: {keys}")
    p.add_argument("--force", action="store_true", help="re-run the arms asked for")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        help=f"PNG to write (default: <work-dir>/reproduction_{name}.png)",
    )
    p.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="passed to every arm's ssld-zoo distill (and to the cache's ssld-zoo label)",
    )
    return p


def select_arms(arms: list[Arm], wanted: str) -> list[Arm]:
    """The arms named in ``wanted`` (comma-separated keys), in ``arms``' order; an unknown key
    fails naming it and the valid ones."""
    keys = [k for k in wanted.split(",") if k]
    by_key = {a.key: a for a in arms}
    unknown = sorted(set(keys) - set(by_key))
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; valid: {', '.join(by_key)}")
    return [a for a in arms if a.key in keys]


def check_data(data: Path, splits: tuple[str, ...], layout: str) -> None:
    """Fail naming the first of ``splits`` that is not a folder under ``data`` and the
    ``layout`` --data must have."""
    for split in splits:
        if not (data / split).is_dir():
            raise SystemExit(f"{data / split} is not a folder: --data must hold {layout}")
