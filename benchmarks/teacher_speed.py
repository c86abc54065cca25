"""Each lever of the fast online teacher, measured side by side in one run: forward images/s of
a frozen teacher as it was (``torch.no_grad``, BatchNorm unfolded, fp32) and with each lever of
:class:`ssld_zoo.distill.teacher.OnlineTeacher` added in turn.

    python benchmarks/teacher_speed.py [--teacher resnet50_vd] [--size 224] [--batch 16]
        [--iters 5] [--repeats 3] [--compile] [--json out.json]

On a GPU: ``--teacher resnext101_32x16d_wsl --batch 128``. The levers' defaults in
``ssld_zoo/distill/teacher.py`` and the recipes' defaults follow these figures. Rows alternate
over ``--repeats`` so machine load hits all alike; the best of each is reported. The teacher
is randomly initialised (1,000 classes) with non-trivial BatchNorm statistics.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn as nn


def _plain(model: nn.Module):
    """The teacher as the Distiller ran it before OnlineTeacher."""

    def run(x):
        with torch.no_grad():
            return model(x).float()

    return run


def configs(model: nn.Module, device: str, compile_: bool) -> dict:
    from ssld_zoo.distill.teacher import OnlineTeacher

    out = {"no_grad, BN unfolded, fp32 (before)": _plain(model)}

    def make(**kw):
        return OnlineTeacher(copy.deepcopy(model), probe_size=64, **kw)

    out["inference_mode"] = make(fold_bn=False, channels_last=False, precision="fp32")
    out["+ BN folded"] = make(fold_bn=True, channels_last=False, precision="fp32")
    out["+ BN folded + channels_last"] = make(fold_bn=True, channels_last=True, precision="fp32")
    out["+ BN folded + bf16 autocast"] = make(fold_bn=True, channels_last=False, precision="bf16")
    out["+ BN folded + channels_last + bf16"] = make(
        fold_bn=True, channels_last=True, precision="bf16"
    )
    if compile_:
        out["+ BN folded + compile"] = make(
            fold_bn=True, channels_last=device == "cuda", precision="auto", compile=True
        )
    return out


def speed(fn, x: torch.Tensor, iters: int) -> float:
    fn(x)  # warm-up (compiles, picks kernels)
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return iters * x.shape[0] / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    torch.set_flush_denormal(True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="resnet50_vd")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--json")
    args = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    import ssld_zoo

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = ssld_zoo.load(args.teacher, pretrained=False, num_classes=1000).eval()
    for m in model.modules():  # trained-like statistics: folding must not be trivially exact
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    model.requires_grad_(False).to(device)
    runs = configs(model, device, args.compile)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    ref = runs["no_grad, BN unfolded, fp32 (before)"](x)
    speeds = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            speeds[k].append(speed(fn, x, args.iters))
    best = {k: max(v) for k, v in speeds.items()}
    base = best["no_grad, BN unfolded, fp32 (before)"]
    table = Table(
        title=f"teacher forward, {args.teacher}, {args.size} px, batch {args.batch}, "
        f"{device.upper()}, {torch.get_num_threads()} threads"
    )
    for c in ("teacher", "images/s", "vs before", "max |logit diff|"):
        table.add_column(c, justify="left" if c == "teacher" else "right")
    diffs = {}
    for k, fn in runs.items():
        diffs[k] = float((fn(x) - ref).abs().max())
        table.add_row(k, f"{best[k]:.1f}", f"{best[k] / base:.2f}x", f"{diffs[k]:.2e}")
    Console(width=120).print(table)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                dict(device=device, args=vars(args), best=best, runs=speeds, max_diff=diffs),
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
