"""CPU inference speed: ssld-zoo vs timm's implementation of the same architecture vs PaddleClas.

    .venv/bin/python benchmarks/inference_speed.py [--models resnet50_vd,...] [--threads 1]
                                                   [--batch 1] [--iters 20] [--no-paddle]

All columns are measured side by side in one run, same batch, same thread count, float32,
eval mode, ``torch.inference_mode``; the zoo and timm models alternate forward by forward and,
where timm's twin holds the same tensors, run with the same (timm-initialised) weights (see
``share_weights``). PaddleClas runs in its own process from the reference venv
(``make paddle-env``) through ``tests/parity/paddle_reference.py --bench`` (batch 1, one thread:
its column is empty for other settings). Also times
``ssld_zoo.load(name)`` from the converted-weights cache. timm is optional (``pip install timm``).

``--deploy`` times the inference forms of one architecture instead (default resnet50_vd, batch
8, 2 threads), all interleaved in one run, against timm's twin with the same weights:

    .venv/bin/python benchmarks/inference_speed.py --deploy [--models resnet50_vd] [--iters 10]

ours eager / ``ssld_zoo.deploy.fuse`` / channels_last / both / fused + TorchScript frozen (and in
channels_last), timm eager / timm TorchScript frozen, with and without
``torch.jit.optimize_for_inference``. "Frozen" is ``torch.jit.script`` (else ``torch.jit.trace``,
labelled so) + ``torch.jit.freeze``; our frozen rows add ``optimize_for_inference``, and so does
timm's last row (the same recipe: freezing folds timm's BatchNorms too). The last column is each
output's largest difference from ours eager, relative to that output's largest value: the fused
forms must stay at fp32 rounding.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ssld_zoo  # noqa: E402
from ssld_zoo.registry import get_arch  # noqa: E402

# zoo architecture -> timm model of the same architecture (None: timm has no equivalent)
TIMM_TWIN = {
    "resnet18_vd": "resnet18d", "resnet34_vd": "resnet34d", "resnet50_vd": "resnet50d",
    "resnet101_vd": "resnet101d", "resnet152_vd": "resnet152d", "resnet200_vd": "resnet200d",
    "mobilenetv1": "mobilenetv1_100", "mobilenetv2": "mobilenetv2_100",
    "mobilenetv3_large_x1_0": "mobilenetv3_large_100",
    "mobilenetv3_small_x1_0": "mobilenetv3_small_100",
    "res2net50_vd_26w_4s": "res2net50d", "hrnet_w18_c": "hrnet_w18", "hrnet_w48_c": "hrnet_w48",
    "ghostnet_x1_0": "ghostnet_100", "ghostnet_x1_3": "ghostnet_130",
    "pplcnet_x1_0": "lcnet_100", "pplcnet_x0_5": "lcnet_050",
    "pplcnetv2_small": "lcnetv2_small", "pplcnetv2_base": "lcnetv2_base",
    "pplcnetv2_large": "lcnetv2_large",
    "pphgnet_tiny": "hgnet_tiny", "pphgnet_small": "hgnet_small",
    "pphgnetv2_b0": "hgnetv2_b0", "pphgnetv2_b4": "hgnetv2_b4",
    "nextvit_small_224": None,
}
DEFAULT = ["resnet50_vd", "resnet34_vd", "mobilenetv3_large_x1_0", "mobilenetv1", "mobilenetv2",
           "res2net50_vd_26w_4s", "hrnet_w18_c", "ghostnet_x1_3", "pplcnet_x1_0",
           "pphgnet_tiny", "pphgnetv2_b0"]
PADDLE_PY = Path(os.environ.get("SSLD_ZOO_PADDLE_PYTHON", ROOT / ".venv-paddle/bin/python"))


def time_torch(models: list[torch.nn.Module], x: torch.Tensor | list[torch.Tensor],
               iters: int) -> list[float]:
    """Median milliseconds of one forward of each model, measured interleaved (one forward of
    each in turn, ``iters`` rounds) so that drift in clock speed or machine load hits all alike.
    ``x`` is the input of all, or a list of one input per model (a channels_last copy, say)."""
    xs = x if isinstance(x, list) else [x] * len(models)
    for m in models:
        m.eval()
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for _ in range(3):
            for m, xi in zip(models, xs):
                m(xi)
        for _ in range(iters):
            for m, xi, t_list in zip(models, xs, times):
                t = time.perf_counter()
                m(xi)
                t_list.append(time.perf_counter() - t)
    return [statistics.median(t) * 1e3 for t in times]


def share_weights(src: torch.nn.Module, dst: torch.nn.Module) -> bool:
    """Load ``src``'s tensors into ``dst`` when both hold the same tensors in the same order
    (the same architecture under other names); return whether they did.

    Random weights are values too: the zoo's default (PyTorch) initialisation, in eval mode with
    fresh BatchNorm statistics, shrinks activations towards float32's denormal range, which CPUs
    compute slowly. With the same weights in both models, only the code differs (see
    ``benchmarks/weights_vs_code.py``); timm's initialisation keeps activations in range, as
    trained weights do, so both models get timm's."""
    s = [(k, v) for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")]
    dst_state = dst.state_dict()
    d = [k for k in dst_state if not k.endswith("num_batches_tracked")]
    if len(s) != len(d) or any(v.shape != dst_state[k].shape for (_, v), k in zip(s, d)):
        return False
    dst.load_state_dict({k: v for (_, v), k in zip(s, d)}, strict=False)
    return True


def time_paddle(paddle_name: str, size: int, iters: int) -> float | None:
    """Median ms of PaddleClas's model (batch 1, one thread) in the reference venv."""
    import json

    if not PADDLE_PY.exists():
        return None
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [str(PADDLE_PY), str(ROOT / "tests/parity/paddle_reference.py"), "--model", paddle_name,
           "--bench", str(iters), "--size", str(size)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in res.stdout.splitlines():
        if line.startswith("{") and "median_ms" in line:
            return float(json.loads(line)["median_ms"])
    print(f"paddle bench of {paddle_name} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
    return None


def time_cached_load(name: str) -> float:
    """Seconds of ``ssld_zoo.load(name)`` when the converted weights are already cached."""
    from safetensors.torch import save_file

    from ssld_zoo.registry import get_weights
    from ssld_zoo.weights.cache import converted_path

    with tempfile.TemporaryDirectory() as home:
        os.environ["SSLD_ZOO_HOME"] = home
        path = converted_path(get_weights(name))
        path.parent.mkdir(parents=True)
        save_file(ssld_zoo.load(get_weights(name).arch, pretrained=False).state_dict(), str(path),
                  metadata={"weights": name})
        times = []
        for _ in range(5):
            t = time.perf_counter()
            ssld_zoo.load(name)
            times.append(time.perf_counter() - t)
        del os.environ["SSLD_ZOO_HOME"]
    return statistics.median(times)


def frozen(model: torch.nn.Module, x: torch.Tensor, optimize: bool = True
           ) -> tuple[torch.nn.Module, str]:
    """``model`` as a frozen TorchScript module (``optimize``: and
    ``torch.jit.optimize_for_inference``), and how it was captured: ``torch.jit.script``, or
    ``torch.jit.trace`` on ``x`` where scripting fails."""
    model.eval()
    try:
        graph, how = torch.jit.script(model), "scripted"
    except Exception as e:  # noqa: BLE001 - any scripting failure falls back to tracing
        print(f"torch.jit.script({type(model).__name__}) failed, tracing instead: "
              f"{str(e).strip().splitlines()[0]}", file=sys.stderr)
        with torch.no_grad():
            graph, how = torch.jit.trace(model, x), "traced"
    graph = torch.jit.freeze(graph.eval())
    return (torch.jit.optimize_for_inference(graph) if optimize else graph), how


def deploy_rows(name: str, x: torch.Tensor, timm) -> tuple[list[tuple[str, torch.nn.Module,
                                                                       bool]], bool]:
    """(label, model, channels_last input?) for every inference form of ``name`` and its timm
    twin, and whether both hold the same weights."""
    import copy

    from ssld_zoo.deploy import fuse

    cl = torch.channels_last
    ours = ssld_zoo.load(name, pretrained=False)
    twin_name = TIMM_TWIN.get(name)
    twin = timm.create_model(twin_name, pretrained=False).eval() if timm and twin_name else None
    shared = twin is not None and share_weights(twin, ours)
    fused = fuse(copy.deepcopy(ours), x[:1])
    fused_cl = copy.deepcopy(fused).to(memory_format=cl)
    frozen_ours, how = frozen(copy.deepcopy(fused), x)
    frozen_cl, how_cl = frozen(copy.deepcopy(fused_cl), x.contiguous(memory_format=cl))
    opt = "frozen + optimize_for_inference"
    rows = [("ours eager", ours, False),
            ("ours fused", fused, False),
            ("ours channels_last", copy.deepcopy(ours).to(memory_format=cl), True),
            ("ours fused + channels_last", fused_cl, True),
            (f"ours fused + {how} + {opt}", frozen_ours, False),
            (f"ours fused + channels_last + {how_cl} + {opt}", frozen_cl, True)]
    if twin is not None:
        frozen_twin, how_twin = frozen(copy.deepcopy(twin), x, optimize=False)
        optimized_twin, how_opt = frozen(copy.deepcopy(twin), x)
        rows += [(f"timm {twin_name} eager", twin, False),
                 (f"timm {twin_name} {how_twin} + frozen", frozen_twin, False),
                 (f"timm {twin_name} {how_opt} + {opt}", optimized_twin, False)]
    return rows, shared


def run_deploy(args: argparse.Namespace, timm, console) -> None:
    """One table per model: every inference form, timed interleaved (see the docstring)."""
    from rich.table import Table

    x = torch.randn(args.batch, 3, args.size, args.size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for name in args.models.split(","):
        rows, shared = deploy_rows(name, x, timm)
        inputs = [x_cl if cl else x for _, _, cl in rows]
        with torch.inference_mode():
            ref = rows[0][1](x)
            # timm's rows compare only when they hold the same weights
            rel = [float((m(xi) - ref).abs().max()) / float(ref.abs().max())
                   if shared or not label.startswith("timm") else None
                   for (label, m, _), xi in zip(rows, inputs)]
        ms = time_torch([m for _, m, _ in rows], inputs, args.iters)
        timm_ms = next((t for (label, _, _), t in zip(rows, ms) if label.endswith(" eager")
                        and label.startswith("timm")), None)
        table = Table(title=f"{name}: CPU inference forms, float32, batch {args.batch}, "
                            f"{args.threads} thread(s), {args.size}px, median of {args.iters}, "
                            f"interleaved (torch {torch.__version__}"
                            f"{', same weights as timm' if shared else ''})")
        for col in ("form", "ms / batch", "img/s", "vs timm eager", "max |Δ| / max |eager|"):
            table.add_column(col, justify="left" if col == "form" else "right")
        for (label, _, _), t, r in zip(rows, ms, rel):
            table.add_row(label, f"{t:.1f}", f"{1e3 * args.batch / t:.1f}",
                          f"{timm_ms / t:.2f}x" if timm_ms else "-",
                          "-" if r is None else f"{r:.1e}")
        console.print(table)
        ours_ms = {label: t for (label, _, _), t in zip(rows, ms) if label.startswith("ours")}
        best = min(ours_ms, key=ours_ms.get)
        timm_frozen = [t for (label, _, _), t in zip(rows, ms)
                       if label.startswith("timm") and "frozen" in label]
        if timm_ms:
            console.print(f"fastest of ours: {best} ({ours_ms[best]:.1f} ms) = "
                          f"{timm_ms / ours_ms[best]:.2f}x timm eager, "
                          f"{min(timm_frozen) / ours_ms[best]:.2f}x timm's fastest frozen form",
                          highlight=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", help=f"default: {','.join(DEFAULT)} (--deploy: resnet50_vd)")
    ap.add_argument("--threads", type=int, help="default: 1 (--deploy: 2)")
    ap.add_argument("--batch", type=int, help="default: 1 (--deploy: 8)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, help="default: 20 (--deploy: 10)")
    ap.add_argument("--no-paddle", action="store_true")
    ap.add_argument("--deploy", action="store_true",
                    help="time the inference forms (fused, channels_last, frozen) of --models")
    args = ap.parse_args()
    for key, plain, deploy in (("models", ",".join(DEFAULT), "resnet50_vd"), ("threads", 1, 2),
                               ("batch", 1, 8), ("iters", 20, 10)):
        if getattr(args, key) is None:
            setattr(args, key, deploy if args.deploy else plain)
    torch.set_num_threads(args.threads)
    try:
        import timm
    except ImportError:
        timm = None
    from rich.console import Console
    from rich.table import Table

    if args.deploy:
        return run_deploy(args, timm, Console(width=160))

    table = Table(title=f"CPU inference, float32, batch {args.batch}, {args.threads} thread(s), "
                        f"{args.size}px, median of {args.iters} (torch {torch.__version__})")
    for col in ("model", "ssld-zoo ms", "img/s", "timm twin", "timm ms", "zoo/timm speed",
                "PaddleClas ms", "zoo/Paddle speed"):
        table.add_column(col, justify="left" if col in ("model", "timm twin") else "right")
    names = [n for n in args.models.split(",") if n]
    x = torch.randn(args.batch, 3, args.size, args.size)
    for name in names:
        try:
            arch = get_arch(name)
        except KeyError:
            print(f"skipping {name}: not registered", file=sys.stderr)
            continue
        twin = TIMM_TWIN.get(name)
        models = [ssld_zoo.load(name, pretrained=False)]
        shared = False
        if timm is not None and twin:
            models.append(timm.create_model(twin, pretrained=False))
            shared = share_weights(models[1], models[0])
        zoo_ms, timm_ms = (time_torch(models, x, args.iters) + [None])[:2]
        # paddle_reference.py --bench measures batch 1 on one thread only.
        paddle_ok = not args.no_paddle and args.batch == 1 and args.threads == 1
        pd_ms = time_paddle(arch.paddle_name, args.size, args.iters) if paddle_ok else None
        fmt = lambda v, f="{:.1f}": "-" if v is None else f.format(v)  # noqa: E731
        table.add_row(name, fmt(zoo_ms), fmt(1e3 * args.batch / zoo_ms),
                      (twin + (" (same weights)" if shared else "")) if twin else "-",
                      fmt(timm_ms), fmt(timm_ms / zoo_ms if timm_ms else None, "{:.2f}x"),
                      fmt(pd_ms), fmt(pd_ms / zoo_ms if pd_ms else None, "{:.2f}x"))
    Console(width=160).print(table)
    if "resnet50_vd" in names:
        print(f"ssld_zoo.load('resnet50_vd_ssld') from the converted cache: "
              f"{time_cached_load('resnet50_vd_ssld') * 1e3:.0f} ms (median of 5)")


if __name__ == "__main__":
    main()
