"""Loader throughput: decode + augment images/s per CPU core, and the DataLoader settings.

    python benchmarks/loader_speed.py [--images 0] [--rounds 3] [--pillow-simd DIR]
        [--loader-epochs 2] [--batch 32] [--json out.json]

Part 1, one core (``torch.set_num_threads(1)``, one process): each decoder turns the real
photos of ``$SSLD_ZOO_TEST_DATA/coco_mini/images`` (228 COCO photos, up to 640 px) into the
distillation train view (``TrainViewTransform(224)``: RandomResizedCrop 224 + flip, as the
recipes) and the eval view (resize 256, centre crop 224), uint8 CHW tensors:

* **PIL** (``ssld_zoo.preprocess.decode_image`` + the transforms on PIL images: what
  ``ImageDataset`` did before);
* **pillow-simd** (the same code, run in a child process with ``--pillow-simd DIR`` first on
  its path: a folder holding pillow-simd, e.g. ``pip install --target DIR pillow-simd``);
* **torchvision** (``torchvision.io.decode_jpeg`` on CPU, then the same v2 transforms on
  tensors): ``ssld_zoo.data.images.read_pixels``, what ``ImageDataset`` reads with now;
* **TorchCodec** (``torchcodec.decoders.decode_jpeg``, then the tensor transforms), if it
  imports;
* **GPU** (``torchvision.io.decode_jpeg(device="cuda")``, nvJPEG, batched, then the tensor
  transforms on the GPU), only where CUDA is available: images/s of one GPU, not per core.

Rows alternate over ``--rounds`` (each round every row decodes every photo once) so that machine
load hits all alike; the table gives the best round and every round. Files are read from disk
(the page cache) each time, as a loader does.

Part 2, ``ImageDataset`` through ``torch.utils.data.DataLoader`` (the recipes' loader: the
``EpochIndexSampler``, ``collate_images``, batch ``--batch``) over ``--loader-epochs`` epochs
of the same photos, for num_workers 0/1/2, pin_memory (only with CUDA), persistent_workers,
prefetch_factor, and the reader ``ImageDataset`` had before (PIL): images per wall-second,
worker start-up included (an epoch of 228 photos is short, so start-up weighs far more than on
ImageNet).

On a shared machine, wall-clock rates follow the other jobs' load; the per-core rows of part 1
count this process's CPU seconds instead (``time.process_time``), which that load hardly moves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE, EVAL_RESIZE = 224, 256


def photo_paths(limit: int = 0) -> list[Path]:
    """The coco_mini photos (train then val, sorted); the first ``limit`` when > 0."""
    src = (
        Path(os.environ.get("SSLD_ZOO_TEST_DATA", ROOT.parent / "shared" / "data"))
        / "coco_mini"
        / "images"
    )
    paths = sorted((src / "train").glob("*.jpg")) + sorted((src / "val").glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(
            f"no photos under {src}/train or {src}/val: set SSLD_ZOO_TEST_DATA to the folder "
            f"holding coco_mini/"
        )
    return paths[:limit] if limit > 0 else paths


def views() -> dict[str, Callable]:
    """The train and eval transforms of the recipes at 224 px (PIL image or uint8 tensor in,
    uint8 CHW tensor out)."""
    from ssld_zoo.data.images import ResizeCenterCrop, TrainViewTransform

    return {
        "train": TrainViewTransform(SIZE),
        "eval": ResizeCenterCrop(SIZE, EVAL_RESIZE),
    }


def decode_pil(path: Path) -> Any:
    from ssld_zoo.preprocess import decode_image

    return decode_image(path)


def decode_torchvision(path: Path) -> torch.Tensor:
    """The reader ``ImageDataset`` uses: torchvision's ``decode_jpeg`` after Pillow reads the
    header (:func:`ssld_zoo.data.decode.decode_tensor`)."""
    from ssld_zoo.data.decode import decode_tensor

    return decode_tensor(path)


def decode_torchcodec(path: Path) -> torch.Tensor:
    from torchcodec.decoders import decode_jpeg  # optional: see the module doc

    return decode_jpeg(str(path), mode="RGB")


def decoders() -> dict[str, Callable]:
    """The CPU decoders of this interpreter, by row name; TorchCodec only if it imports."""
    rows = {"PIL": decode_pil, "torchvision decode_jpeg (read_pixels)": decode_torchvision}
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # not installed, or built for another torch: no row
        pass
    else:
        rows["TorchCodec decode_jpeg"] = decode_torchcodec
    return rows


def decode_augment_rate(
    decode: Callable, transform: Callable, paths: list[Path]
) -> tuple[float, float]:
    """``(images per CPU-second, images per wall-second)`` of ``transform(decode(path))``
    over ``paths``, in this thread. CPU seconds are this process's (one thread): the rate of
    one core even when other jobs share the machine, where wall seconds are not."""
    from ssld_zoo.data.images import sample_seed, seeded

    c0, t0 = time.process_time(), time.perf_counter()
    for i, p in enumerate(paths):
        with seeded(sample_seed(0, 0, i)):
            out = transform(decode(p))
        assert out.shape == (3, SIZE, SIZE) and out.dtype == torch.uint8, (p, out.shape)
    return len(paths) / (time.process_time() - c0), len(paths) / (time.perf_counter() - t0)


def gpu_decode_rate(
    paths: list[Path], transform: Callable, device: str = "cuda", batch: int = 64
) -> float:
    """Images/s of nvJPEG (batched ``decode_jpeg`` on ``device``) + ``transform`` on the
    device: files read on the CPU, decoded and augmented on the GPU."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    from ssld_zoo.data.images import sample_seed, seeded

    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for start in range(0, len(paths), batch):
        data = [read_file(str(p)) for p in paths[start : start + batch]]
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        for j, img in enumerate(images):
            with seeded(sample_seed(0, 0, start + j)):
                out = transform(img)
            assert out.shape == (3, SIZE, SIZE), out.shape
    torch.cuda.synchronize(device)
    return len(paths) / (time.perf_counter() - t0)


def simd_rates(simd_dir: Path, images: int) -> dict[str, tuple[float, float]]:
    """One round of the PIL rows in a child process with pillow-simd (``simd_dir``) first on
    its path: ``{view: (images per CPU-second, per wall-second)}``. Raises with the child's
    error when it fails or imports another Pillow."""
    code = (
        "import json, sys, torch; torch.set_num_threads(1); sys.path.insert(0, %r);"
        "import PIL, loader_speed as L;"
        "assert 'post' in PIL.__version__, 'not pillow-simd: ' + PIL.__version__;"
        "p = L.photo_paths(%d);"
        "print(json.dumps({k: L.decode_augment_rate(L.decode_pil, t, p) "
        "for k, t in L.views().items()}))"
    ) % (str(Path(__file__).parent), images)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(simd_dir), str(ROOT)]))
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return {k: tuple(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def loader_rate(
    paths: list[Path],
    *,
    workers: int,
    pin_memory: bool = False,
    persistent: bool = False,
    prefetch: int | None = None,
    pil: bool = False,
    epochs: int = 2,
    batch: int = 32,
) -> tuple[float, float]:
    """``(images per CPU-second, images per wall-second)`` of ``ImageDataset`` (train view
    224) through a ``DataLoader`` as the recipes build it, over ``epochs`` epochs, worker
    start-up included; CPU seconds of this process and its workers together. ``pil``: with
    the reader it had before (Pillow, transforms on PIL images) instead of ``read_pixels``."""
    import gc
    import resource
    import tempfile

    from torch.utils.data import DataLoader

    from ssld_zoo.data.images import EpochIndexSampler, ImageDataset, collate_images

    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("".join(f"{p}\n" for p in paths))
        listing.flush()
        dataset = ImageDataset(
            unlabeled_roots=[listing.name],
            transform=dict(type="TrainViewTransform", input_size=SIZE),
        )
    sampler = EpochIndexSampler(dataset, shuffle=True, seed=0)
    kwargs: dict[str, Any] = dict(
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_images,
        pin_memory=pin_memory,
        drop_last=False,
    )
    if workers:
        kwargs.update(persistent_workers=persistent, prefetch_factor=prefetch or 2)

    def cpu_seconds() -> float:  # workers count once joined (at each epoch's end, or del)
        own, kids = (
            resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    with _pil_reader() if pil else contextlib.nullcontext():
        c0, t0 = cpu_seconds(), time.perf_counter()
        loader = DataLoader(dataset, **kwargs)  # forked workers inherit the reader
        seen, b = 0, None
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for b in loader:
                seen += int(b["inputs"].shape[0])
        wall = time.perf_counter() - t0
        del loader, b  # persistent workers end (and are joined) here
        gc.collect()
    return seen / (cpu_seconds() - c0), seen / wall


@contextlib.contextmanager
def _pil_reader() -> Iterator[None]:
    """``ImageDataset`` reading as before :mod:`ssld_zoo.data.decode`: a PIL image, the
    transforms on it."""
    from ssld_zoo.data import images

    saved = images.read_pixels
    images.read_pixels = images.read_image
    try:
        yield
    finally:
        images.read_pixels = saved


LOADER_SETTINGS: dict[str, dict[str, Any]] = {
    "workers 0, PIL reader (before)": dict(workers=0, pil=True),
    "workers 0": dict(workers=0),
    "workers 1": dict(workers=1),
    "workers 2, PIL reader (before)": dict(workers=2, pil=True),
    "workers 2": dict(workers=2),
    "workers 2, persistent": dict(workers=2, persistent=True),
    "workers 2, persistent, prefetch 4": dict(workers=2, persistent=True, prefetch=4),
    "workers 2, persistent, pin_memory": dict(workers=2, persistent=True, pin_memory=True),
}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Both parts, rows interleaved per round: ``{"decode": {row: {view: [images per
    CPU-second]}}, "decode_wall": (the same, per wall-second), "loader": {setting: [images
    per wall-second]}, ...}``."""
    torch.set_num_threads(1)
    paths = photo_paths(args.images)
    transforms = views()
    rows: dict[str, Callable | None] = dict(decoders())
    if args.pillow_simd:
        rows["pillow-simd"] = None  # a child process, see simd_rates
    cuda = torch.cuda.is_available() and not args.no_gpu
    if cuda:
        rows["GPU nvJPEG (torchvision, cuda)"] = None
    decode: dict[str, dict[str, list[float]]] = {r: {v: [] for v in transforms} for r in rows}
    wall_rates: dict[str, dict[str, list[float]]] = {r: {v: [] for v in transforms} for r in rows}
    errors: dict[str, str] = {}
    for _ in range(args.rounds):
        for row, fn in rows.items():
            if row in errors:
                continue
            try:
                if row == "pillow-simd":
                    for v, (cpu, wall) in simd_rates(Path(args.pillow_simd), args.images).items():
                        decode[row][v].append(cpu)
                        wall_rates[row][v].append(wall)
                    continue
                for v, t in transforms.items():
                    if fn is None:  # the GPU: its images/s, wall time
                        cpu = wall = gpu_decode_rate(paths, t)
                    else:
                        cpu, wall = decode_augment_rate(fn, t, paths)
                    decode[row][v].append(cpu)
                    wall_rates[row][v].append(wall)
            except Exception as e:  # one decoder failing must not lose the others
                errors[row] = f"{type(e).__name__}: {e}"
    loader: dict[str, list[float]] = {k: [] for k in LOADER_SETTINGS}
    loader_cpu: dict[str, list[float]] = {k: [] for k in LOADER_SETTINGS}
    if args.loader_epochs > 0:
        torch.set_num_threads(1)  # workers are processes; the main one only collates
        for _ in range(args.rounds):
            for name, kw in LOADER_SETTINGS.items():
                if kw.get("pin_memory") and not torch.cuda.is_available():
                    continue  # pinning needs a GPU; without one torch ignores it
                cpu, wall = loader_rate(paths, epochs=args.loader_epochs, batch=args.batch, **kw)
                loader[name].append(wall)
                loader_cpu[name].append(cpu)
    return {
        "images": len(paths),
        "threads": torch.get_num_threads(),
        "cuda": cuda,
        "decode": decode,  # images per CPU-second (the GPU row: per second)
        "decode_wall": wall_rates,
        "errors": errors,
        "loader": {k: v for k, v in loader.items() if v},
        "loader_cpu": {k: v for k, v in loader_cpu.items() if v},
    }


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    t = Table(
        title=f"decode + augment to 224 px, {result['images']} coco_mini photos (<= 640 px), "
        f"one core: images per CPU-second (GPU: per second), best of rounds"
    )
    for c, j in (
        ("decoder", "left"),
        ("train view", "right"),
        ("eval view", "right"),
        ("train vs PIL", "right"),
        ("rounds (train)", "right"),
        ("train, wall", "right"),
    ):
        t.add_column(c, justify=j)
    base = max(result["decode"]["PIL"]["train"] or [float("nan")])
    for row, by_view in result["decode"].items():
        if row in result["errors"]:
            t.add_row(row, "failed", "", "", result["errors"][row][:60], "")
            continue
        tr, ev = max(by_view["train"]), max(by_view["eval"])
        t.add_row(
            row,
            f"{tr:.1f}",
            f"{ev:.1f}",
            f"{tr / base:.2f}x",
            " ".join(f"{x:.0f}" for x in by_view["train"]),
            f"{max(result['decode_wall'][row]['train']):.1f}",
        )
    console.print(t)
    if result["loader"]:
        t = Table(title="ImageDataset through DataLoader (train view 224), best of rounds")
        t.add_column("setting")
        t.add_column("images/s (wall)", justify="right")
        t.add_column("rounds", justify="right")
        t.add_column("images per CPU-second", justify="right")
        for name, rates in result["loader"].items():
            t.add_row(
                name,
                f"{max(rates):.1f}",
                " ".join(f"{x:.0f}" for x in rates),
                f"{max(result['loader_cpu'][name]):.1f}",
            )
        console.print(t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=0, help="photos used (0: all 228)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pillow-simd", help="a folder holding pillow-simd (pip install --target)")
    p.add_argument("--loader-epochs", type=int, default=2, help="0: skip the DataLoader part")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU row even with CUDA")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    result = measure(args)
    result["args"] = vars(args)
    print_tables(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
