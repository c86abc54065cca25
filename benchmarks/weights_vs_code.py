"""Is a speed gap the code or the weights? The zoo model and timm's twin, each with its own and
with the other's weights, timed interleaved; then again with denormals flushed to zero.

    .venv/bin/python benchmarks/weights_vs_code.py [--model resnet50_vd] [--iters 15]

(CPU, batch 1, one thread, 224 px, float32, eval mode; needs timm.) This is how the 0.89x of
resnet50_vd against timm's resnet50d turned out not to be the port's code (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_speed import TIMM_TWIN, share_weights, time_torch  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50_vd")
    p.add_argument("--iters", type=int, default=15)
    args = p.parse_args()
    import timm
    from rich.console import Console
    from rich.table import Table

    import ssld_zoo

    torch.set_num_threads(1)
    torch.manual_seed(0)
    zoo = ssld_zoo.load(args.model, pretrained=False).eval()
    twin = timm.create_model(TIMM_TWIN[args.model], pretrained=False).eval()
    zoo_timm_w, timm_zoo_w = copy.deepcopy(zoo), copy.deepcopy(twin)
    if not (share_weights(twin, zoo_timm_w) and share_weights(zoo, timm_zoo_w)):
        raise SystemExit(f"{args.model} and {TIMM_TWIN[args.model]} do not hold the same tensors")
    models = {
        "zoo code, zoo weights": zoo,
        "timm code, timm weights": twin,
        "zoo code, timm weights": zoo_timm_w,
        "timm code, zoo weights": timm_zoo_w,
    }
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        same = (zoo_timm_w(x) - twin(x)).abs().max().item()

    plain = time_torch(list(models.values()), x, args.iters)
    torch.set_flush_denormal(True)
    flushed = time_torch(list(models.values()), x, args.iters)
    table = Table(
        title=f"{args.model} vs timm {TIMM_TWIN[args.model]}: CPU, batch 1, 1 thread, "
        f"median ms of {args.iters} (same weights -> max |logit diff| {same:.1e})"
    )
    for c in ("code, weights", "ms", "ms, denormals flushed"):
        table.add_column(c, justify="left" if c == "code, weights" else "right")
    for name, a, b in zip(models, plain, flushed):
        table.add_row(name, f"{a:.1f}", f"{b:.1f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
