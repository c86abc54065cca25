"""The GPU proof in one unattended run (< 8 min on one H100/H200): one JSON, one markdown table.

    python benchmarks/gpu_proof.py --out gpu_proof/ [--budget 450]
    python benchmarks/gpu_proof.py --out /tmp/proof --device cpu --smoke   # the CPU check

Parts, in this order (the cheapest and most telling first), each with its own time cap inside
a global ``--budget`` (seconds), each in its own ``try`` (a failure is recorded in the JSON
with its error and the next part runs), the JSON rewritten (temp file + rename) after each:

1. ``decode``: decode + augment images/s, CPU decoders on one core against nvJPEG on the GPU
   (:func:`loader_speed.measure`, coco_mini's 640-px photos, train and eval views at 224).
2. ``distill_speed``: the paper's pair, ResNeXt101_32x16d_wsl -> ResNet50_vd at 224 px, batch
   128, bf16 (AMP for the student, the fast teacher in bf16), through
   ``benchmarks/distill_speed.py``: supervised / online as before / fast online / cached, on
   Imagenette's 4,000 training photos (an epoch of 31 steps, so the loader workers stay busy).
3. ``distill_imagenette``: 200 steps of a real ``ssld-zoo distill`` run (the engine's runner,
   ``compose_recipe`` over ``recipes/_base_``) on Imagenette train + pool at 128 px with
   ``channels_last`` (the preprocessor), bf16 (``auto_amp_optim_wrapper``, amp=bf16), and
   ``torch.compile`` (the runtime's ``compile`` for the train step, the teacher's own
   ``compile``); if compiling fails, the error is recorded and the run repeats eagerly. The
   models start from random weights (nothing can be downloaded there): this proves the engine
   and its speed, not an accuracy.
4. ``inference``: bf16 inference images/s of zoo models: fp32 eager, bf16 eager, bf16
   compiled (``ssld_zoo.deploy.optimize``), timed by :func:`inference_speed.time_torch`.

``--smoke`` runs a tiny version of each part (a few images, 32-px crops, small models, one
or two steps, no compiling) so that a CPU test can run the whole script.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import distill_speed  # noqa: E402  (benchmarks/ is not a package: its scripts are modules here)
import inference_speed  # noqa: E402
import loader_speed  # noqa: E402

DATA = Path(os.environ.get("SSLD_ZOO_TEST_DATA", ROOT.parent / "shared" / "data"))
# What a part has measured so far: kept beside its error when it fails or runs out of time.
PARTIAL: dict[str, Any] = {}
# seconds each part may take at most (the global budget may leave it less)
CAPS = {"decode": 60, "distill_speed": 210, "distill_imagenette": 150, "inference": 150}


class PartTimeout(Exception):
    """A part ran past its time."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`PartTimeout` in this (the main) thread after ``seconds``."""

    def _raise(signum, frame):
        raise PartTimeout(f"stopped after {seconds:.0f} s (its share of the time budget)")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _imagenette(smoke: bool, tmp: Path) -> tuple[Path, Path | None]:
    """(labeled ImageFolder root, unlabeled pool or None) of Imagenette; with ``smoke``, a
    tree of symlinks to 4 photos of each of 2 classes and no pool."""
    src = DATA / "imagenette"
    if not (src / "train").is_dir():
        raise FileNotFoundError(f"{src}/train not found: set SSLD_ZOO_TEST_DATA")
    if not smoke:
        return src / "train", src / "pool"
    root = tmp / "imagenette_smoke"
    if root.is_dir():  # made by an earlier part of this run
        return root, None
    for cls in sorted(d for d in (src / "train").iterdir() if d.is_dir())[:2]:
        (root / cls.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:4]:
            (root / cls.name / f.name).symlink_to(f)
    return root, None


def part_decode(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    ns = argparse.Namespace(
        images=4 if args.smoke else 0,
        rounds=1 if args.smoke else 2,
        pillow_simd=None,
        loader_epochs=0,
        batch=32,
        no_gpu=not args.device.startswith("cuda"),
    )
    out = loader_speed.measure(ns)
    torch.set_num_threads(args.threads)  # measure() pinned one thread for its per-core rows
    return out


def part_distill_speed(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    images, _ = _imagenette(args.smoke, tmp)
    if args.smoke:
        pair = ["--teacher", "resnet18_vd", "--student", "mobilenetv3_small_x0_35"]
        run = ["--size", "32", "--batch", "4", "--iters", "1", "--warmup", "1", "--views", "2"]
        run += ["--topk", "5", "--crops", "2", "--workers", "0"]
    else:
        pair = ["--teacher", "resnext101_32x16d_wsl", "--student", "resnet50_vd"]
        run = ["--size", "224", "--batch", "128", "--iters", "12", "--warmup", "4"]
        run += ["--views", "4", "--topk", "10", "--crops", "4", "--workers", str(args.workers)]
    result = tmp / "distill_speed.json"
    distill_speed.main(
        pair
        + run
        + ["--repeats", "1", "--precision", "bf16", "--channels-last", "true"]
        + ["--images", str(images), "--json", str(result)]
    )
    return json.loads(result.read_text())


class _LossClock(distill_speed._Clock):
    """distill_speed's clock (views/s after a warm-up, stop after ``warmup + iters``) that also
    keeps the loss of every step and the time of the first (compiling) steps."""

    def __init__(self, warmup: int, iters: int):
        super().__init__(warmup, iters)
        self.losses: list[float] = []
        self.start = time.perf_counter()
        self.warmup_s: float | None = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if outputs and "loss" in outputs:
            self.losses.append(float(torch.as_tensor(outputs["loss"]).detach()))
        if runner.iter + 1 == self.warmup:
            self.warmup_s = time.perf_counter() - self.start
        super().after_train_iter(runner, batch_idx, data_batch, outputs)


def imagenette_recipe(args: argparse.Namespace, tmp: Path, compile_: bool):
    """The 200-step Imagenette distillation as a recipe over ``recipes/_base_``."""
    from ssld_zoo.distill.recipes import compose_recipe

    train, pool = _imagenette(args.smoke, tmp)
    size = 32 if args.smoke else 128
    teacher = "resnet18_vd" if args.smoke else "resnext101_32x16d_wsl"
    student = "mobilenetv3_small_x0_35" if args.smoke else "resnet50_vd"
    workers = 0 if args.smoke else args.workers
    return compose_recipe(
        dict(
            model=dict(
                teacher=dict(
                    type="ZooModel",
                    name=teacher,
                    pretrained=False,
                    num_classes=1000,
                    bn_mode="eval",
                    precision="bf16",
                    fold_bn=True,
                    channels_last=True,
                    compile=compile_,
                ),
                student=dict(type="ZooModel", name=student, pretrained=False, num_classes=1000),
                data_preprocessor=dict(channels_last=True),
            ),
            train_dataloader=dict(
                batch_size=4 if args.smoke else 256,
                num_workers=workers,
                persistent_workers=workers > 0,
                pin_memory=args.device.startswith("cuda"),
                drop_last=True,
                sampler=dict(type="EpochIndexSampler", shuffle=True),
                collate_fn=dict(type="collate_images"),
                dataset=dict(
                    type="ImageDataset",
                    labeled_roots=[str(train)],
                    unlabeled_roots=[str(pool)] if pool else [],
                    transform=dict(type="TrainViewTransform", input_size=size),
                ),
            ),
            optim_wrapper=dict(
                type="auto_amp_optim_wrapper",
                amp="bf16",
                optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=5e-5),
            ),
            param_scheduler=[
                dict(type="CosineAnnealingLR", by_epoch=True, begin=0, convert_to_iter_based=True)
            ],
            train_cfg=dict(type="SkipEmptyBatchTrainLoop", max_epochs=1000),
            compile=compile_,
            default_hooks=dict(
                logger=dict(interval=50), checkpoint=dict(interval=10**6, save_best=None)
            ),
            visualizer=dict(vis_backends=[dict(type="LocalVisBackend")]),
        ),
        "gpu_proof_imagenette.py",
    )


def part_distill_imagenette(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from ssld_zoo.distill.runner import build_runner

    warmup, iters = (1, 2) if args.smoke else (20, 180)
    tries = [False] if args.smoke else [True, False]
    out: dict[str, Any] = {}
    for compile_ in tries:
        try:
            recipe = imagenette_recipe(args, tmp, compile_)
            runner = build_runner(recipe, tmp / f"imagenette_{compile_}", log_level="WARNING")
            clock = _LossClock(warmup, iters)
            runner.register_hook(clock)
            try:
                runner.train()
            except distill_speed._Done:
                pass
            _synchronize(args.device)
            out.update(
                compile=compile_,
                steps=warmup + iters,
                batch=recipe.train_dataloader.batch_size,
                views_per_s=clock.views / (clock.t1 - clock.t0),
                warmup_s=clock.warmup_s,
                first_loss=clock.losses[0],
                last_loss=clock.losses[-1],
                losses_finite=all(map(lambda v: v == v and abs(v) != float("inf"), clock.losses)),
                optim_wrapper=type(runner.optim_wrapper).__name__,
            )
            return out
        except PartTimeout:
            raise
        except Exception as e:  # compiling failed: say so, and prove the rest eagerly
            out[f"error_compile_{compile_}"] = f"{type(e).__name__}: {e}"
            PARTIAL.update(out)
            if compile_ is tries[-1]:
                raise
    return out


class _Synced(torch.nn.Module):
    """``model`` whose forward returns once the device is done (time_torch times the call)."""

    def __init__(self, model: Callable, device: str):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, x: torch.Tensor) -> Any:
        out = self.model(x)
        _synchronize(self.device)
        return out


def part_inference(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import copy

    import ssld_zoo
    from ssld_zoo.deploy import optimize

    models = ["pplcnet_x0_25"] if args.smoke else ["resnet50_vd", "mobilenetv3_large_x1_0"]
    models += [] if args.smoke else ["pplcnet_x1_0"]
    batches = [2] if args.smoke else [1, 128]
    size, iters = (32, 2) if args.smoke else (224, 20)
    rows: dict[str, Any] = {}
    PARTIAL["rows"] = rows  # filled model by model
    for name in models:
        model = ssld_zoo.load(name, pretrained=False).to(args.device).eval()
        example = torch.randn(1, 3, size, size, device=args.device)
        forms = {
            "fp32 eager": model,
            "bf16 eager": optimize(
                copy.deepcopy(model), precision="bf16", compile=False, example=example
            ),
        }
        if not args.smoke:
            forms["bf16 compiled"] = optimize(
                copy.deepcopy(model), precision="bf16", example=example
            )
        for batch in batches:
            x = torch.randn(batch, 3, size, size, device=args.device)
            x = x.contiguous(memory_format=torch.channels_last)
            ms = inference_speed.time_torch(
                [_Synced(f, args.device) for f in forms.values()], x, iters
            )
            rows[f"{name} batch {batch}"] = {
                form: {"ms": t, "images_per_s": batch / t * 1e3} for form, t in zip(forms, ms)
            }
    return {"rows": rows}


PARTS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "decode": part_decode,
    "distill_speed": part_distill_speed,
    "distill_imagenette": part_distill_imagenette,
    "inference": part_inference,
}


def _part_rows(part: str, r: dict[str, Any]) -> list[tuple[str, str]]:
    """(measurement, value) rows of one finished part."""
    rows: list[tuple[str, str]] = []
    if part == "decode":
        for dec, by_view in r["decode"].items():
            for view, rates in by_view.items():
                if rates:
                    rows.append((f"{dec}, {view} view, images/s", f"{max(rates):.0f}"))
        rows += [(f"{dec} failed", err) for dec, err in r["errors"].items()]
    elif part == "distill_speed":
        rows += [(f"{cfg}, views/s", f"{v:.1f}") for cfg, v in r["views_per_s"].items()]
        rows.append(("cache build, s", f"{r['build_seconds']:.1f}"))
    elif part == "distill_imagenette":
        rows.append(
            (
                f"{r['steps']} steps, batch {r['batch']}, compile={r['compile']}, views/s",
                f"{r['views_per_s']:.1f}",
            )
        )
        rows.append(("first steps (compiling), s", f"{r['warmup_s']:.1f}"))
        rows.append(("loss first -> last", f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}"))
        rows += [(k, v) for k, v in r.items() if k.startswith("error_compile")]
    elif part == "inference":
        for what, forms in r["rows"].items():
            rows += [
                (f"{what}, {f}, images/s", f"{v['images_per_s']:.0f}") for f, v in forms.items()
            ]
    return rows


def markdown(result: dict[str, Any]) -> str:
    """One markdown table of every figure (and every part's error)."""
    lines = [
        f"GPU proof on {result['device_name']} ({result['device']}), torch {result['torch']}, "
        f"{'smoke (tiny) run' if result['smoke'] else 'full run'}, {result['wall_s']:.0f} s",
        "",
        "| part | measurement | value |",
        "|---|---|---|",
    ]
    for part, r in result["parts"].items():
        rows = [("failed", r["error"])] if "error" in r else []
        try:
            rows += _part_rows(part, r)
        except Exception as e:  # a table bug must not hide the figures (they are in the JSON)
            if "error" not in r:  # (a failed part's figures are partial by nature)
                rows = [("cannot tabulate (see the JSON)", f"{type(e).__name__}: {e}")]
        rows.append(("seconds", f"{r['seconds']:.0f}"))
        for what, value in rows:
            value = str(value).splitlines()[0].replace("|", "/")[:200] if value else ""
            lines.append(f"| {part} | {what} | {value} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for gpu_proof.json and gpu_proof.md")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="a tiny version of every part")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for all parts")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    p.add_argument("--workers", type=int, default=max(1, min(14, (os.cpu_count() or 2) - 2)))
    args = p.parse_args(argv)
    unknown = sorted(set(args.parts.split(",")) - set(PARTS))
    if unknown:
        p.error(f"--parts {','.join(unknown)}: expected some of {','.join(PARTS)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here (use --device cpu --smoke)")
    torch.set_flush_denormal(True)
    args.threads = torch.get_num_threads()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else f"CPU, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "smoke": args.smoke,
        "budget_s": args.budget,
        "parts": {},
        "wall_s": 0.0,
    }
    start = time.perf_counter()

    def flush() -> None:
        result["wall_s"] = time.perf_counter() - start
        write_atomic(out / "gpu_proof.json", json.dumps(result, indent=2))
        write_atomic(out / "gpu_proof.md", markdown(result))

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.parts.split(","):
            left = args.budget - (time.perf_counter() - start)
            t0 = time.perf_counter()
            if left < 5:
                result["parts"][name] = {
                    "error": "skipped: the time budget is spent",
                    "seconds": 0.0,
                }
                flush()
                continue
            PARTIAL.clear()
            try:
                with time_limit(min(CAPS[name], left)):
                    r = PARTS[name](args, Path(tmp))
            except (Exception, PartTimeout) as e:  # one part failing must not lose the others
                r = {**PARTIAL, "error": f"{type(e).__name__}: {e}"}
                r["traceback"] = traceback.format_exc()
            r["seconds"] = time.perf_counter() - t0
            result["parts"][name] = r
            print(
                f"{name}: {'failed: ' + r['error'] if 'error' in r else 'done'} "
                f"({r['seconds']:.0f} s)",
                flush=True,
            )
            flush()
    print(markdown(result))
    return 0 if all("error" not in r for r in result["parts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
