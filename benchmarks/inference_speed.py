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

``--deploy`` times the deployment forms instead: per model and thread count (default: the
five models of ``DEPLOY``, batch 1 and 8, 1 and 2 threads), every form interleaved in one run:

    .venv/bin/python benchmarks/inference_speed.py --deploy [--models pplcnet_x1_0] \
        [--batch 1,8] [--threads 1,2] [--iters 10]

ours eager; fused + channels_last (``ssld_zoo.deploy.optimize(compile=False)``); compiled
(``optimize``: + ``torch.compile`` with freezing); the AOTInductor package (``ssld-zoo export
--format aoti``); bf16 compiled; int8 (PT2E PTQ, compiled); onnxruntime fp32 and int8 (QDQ);
OpenVINO fp32 (if installed); timm eager and timm given the same recipe (``optimize`` on timm's
model); Paddle Inference with oneDNN (``benchmarks/paddle_inference_speed.py`` in the reference
venv, PaddleClas's deployment path). All models have random weights with BatchNorm statistics
of random inputs, denormals flushed; where timm's twin holds the same tensors, it runs ours.
The last column is each output's largest difference from ours eager, relative to its largest
value (batch of the first column; bf16 and int8 differ by design, on random weights). Inductor
bakes the thread count into its kernels, so every compiled form is compiled per thread count.
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
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ssld_zoo  # noqa: E402
from ssld_zoo.registry import get_arch  # noqa: E402

# zoo architecture -> timm model of the same architecture (None: timm has no equivalent)
TIMM_TWIN = {
    "resnet18_vd": "resnet18d",
    "resnet34_vd": "resnet34d",
    "resnet50_vd": "resnet50d",
    "resnet101_vd": "resnet101d",
    "resnet152_vd": "resnet152d",
    "resnet200_vd": "resnet200d",
    "mobilenetv1": "mobilenetv1_100",
    "mobilenetv2": "mobilenetv2_100",
    "mobilenetv3_large_x1_0": "mobilenetv3_large_100",
    "mobilenetv3_small_x1_0": "mobilenetv3_small_100",
    "res2net50_vd_26w_4s": "res2net50d",
    "hrnet_w18_c": "hrnet_w18",
    "hrnet_w48_c": "hrnet_w48",
    "ghostnet_x1_0": "ghostnet_100",
    "ghostnet_x1_3": "ghostnet_130",
    "pplcnet_x1_0": "lcnet_100",
    "pplcnet_x0_5": "lcnet_050",
    "pplcnetv2_small": "lcnetv2_small",
    "pplcnetv2_base": "lcnetv2_base",
    "pplcnetv2_large": "lcnetv2_large",
    "pphgnet_tiny": "hgnet_tiny",
    "pphgnet_small": "hgnet_small",
    "pphgnetv2_b0": "hgnetv2_b0",
    "pphgnetv2_b4": "hgnetv2_b4",
    "nextvit_small_224": None,
}
DEFAULT = [
    "resnet50_vd",
    "resnet34_vd",
    "mobilenetv3_large_x1_0",
    "mobilenetv1",
    "mobilenetv2",
    "res2net50_vd_26w_4s",
    "hrnet_w18_c",
    "ghostnet_x1_3",
    "pplcnet_x1_0",
    "pphgnet_tiny",
    "pphgnetv2_b0",
]
DEPLOY = ["resnet50_vd", "mobilenetv3_large_x1_0", "pplcnet_x1_0", "pplcnetv2_base", "pphgnetv2_b0"]
PADDLE_PY = Path(os.environ.get("SSLD_ZOO_PADDLE_PYTHON", ROOT / ".venv-paddle/bin/python"))


def time_torch(
    models: list[torch.nn.Module], x: torch.Tensor | list[torch.Tensor], iters: int
) -> list[float]:
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
    cmd = [
        str(PADDLE_PY),
        str(ROOT / "tests/parity/paddle_reference.py"),
        "--model",
        paddle_name,
        "--bench",
        str(iters),
        "--size",
        str(size),
    ]
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
        save_file(
            ssld_zoo.load(get_weights(name).arch, pretrained=False).state_dict(),
            str(path),
            metadata={"weights": name},
        )
        times = []
        for _ in range(5):
            t = time.perf_counter()
            ssld_zoo.load(name)
            times.append(time.perf_counter() - t)
        del os.environ["SSLD_ZOO_HOME"]
    return statistics.median(times)


def deploy_forms(
    name: str, x: torch.Tensor, timm, threads: int, work: Path
) -> tuple[list[tuple[str, Callable]], bool]:
    """(label, callable) for every inference form of ``name`` (see the module docstring), all
    built at the current thread count (Inductor bakes it into its kernels), and whether timm's
    twin holds the same weights."""
    import copy

    from ssld_zoo.deploy import fuse, optimize
    from ssld_zoo.deploy.export import export_model, load_exported
    from ssld_zoo.deploy.optimize import FrozenCompiled
    from ssld_zoo.deploy.quantize import compile_int8, quantize_ptq, save_int8

    cl = torch.channels_last
    ours = ssld_zoo.load(name, pretrained=False, num_classes=1000)
    twin_name = TIMM_TWIN.get(name)
    twin = None
    if timm and twin_name:
        try:
            twin = timm.create_model(twin_name, pretrained=False).eval()
        except RuntimeError as e:  # an older timm lacks some twins
            print(f"no timm twin {twin_name}: {e}", file=sys.stderr)
    shared = twin is not None and share_weights(twin, ours)
    _input_statistics(ours, x.shape[-1])
    if shared:
        share_weights(ours, twin)
    elif twin is not None:
        _input_statistics(twin, x.shape[-1])
    fused_cl = optimize(copy.deepcopy(ours), compile=False)
    forms: list[tuple[str, Callable]] = [
        ("ours eager", ours),
        ("ours fused + channels_last", lambda t, m=fused_cl: m(t.contiguous(memory_format=cl))),
        ("ours compile (fused, channels_last, freezing)", optimize(copy.deepcopy(ours))),
    ]
    aoti = work / f"{name}.aoti.pt2"
    export_model(fuse(copy.deepcopy(ours)), aoti, "aoti", dynamic_batch=True, name=name)
    run_aoti = load_exported(aoti, "aoti")
    forms.append(("ours AOTInductor package", lambda t: run_aoti(t)[0]))
    forms.append(("ours bf16 compile", optimize(copy.deepcopy(ours), precision="bf16")))
    calib = [torch.randn(8, 3, x.shape[-1], x.shape[-1]) for _ in range(4)]
    int8 = quantize_ptq(copy.deepcopy(ours), calib)
    forms.append(("ours int8 compile (PT2E PTQ)", compile_int8(int8)))
    onnx_fp32 = work / f"{name}.onnx"
    export_model(fuse(copy.deepcopy(ours)), onnx_fp32, "onnx", dynamic_batch=True, name=name)
    onnx_int8 = save_int8(int8, work / f"{name}.int8.onnx", "onnx", calib[0][:2])
    forms.append(("onnxruntime fp32", _ort(onnx_fp32, threads)))
    forms.append(("onnxruntime int8 (QDQ)", _ort(onnx_int8, threads)))
    openvino = _openvino(onnx_fp32, threads)
    if openvino is not None:
        forms.append(("OpenVINO fp32", openvino))
    if twin is not None:
        forms.append((f"timm {twin_name} eager", twin))
        # timm's ConvNormAct blocks hold the activation inside the BatchNorm (BatchNormAct2d),
        # which fuse() leaves alone; Inductor's freezing folds those BatchNorms instead.
        recipe = copy.deepcopy(twin).to(memory_format=cl)
        forms.append(
            (f"timm {twin_name} channels_last + compile (same recipe)", FrozenCompiled(recipe))
        )
    return forms, shared


@torch.no_grad()
def _input_statistics(model: torch.nn.Module, size: int) -> None:
    """BatchNorm statistics of random inputs: activations at the scale trained weights give
    (fresh statistics shrink them towards denormals; see ``share_weights``)."""
    model.train()
    model(torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(0)))
    model.eval()


def _ort(path: Path, threads: int) -> Callable:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda t: torch.from_numpy(session.run(None, {name: t.numpy()})[0])


def _openvino(path: Path, threads: int) -> Callable | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    try:
        compiled = ov.Core().compile_model(
            str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
        )
    except Exception as e:  # noqa: BLE001 - a column, not the run
        print(f"OpenVINO could not compile {path.name}: {e}", file=sys.stderr)
        return None
    return lambda t: torch.from_numpy(compiled(t.numpy())[0])


def time_paddle_inference(
    paddle_name: str, batches: list[int], threads: int, size: int, iters: int
) -> dict[int, float]:
    """{batch: median ms} of Paddle Inference + oneDNN in the reference venv."""
    import json

    if not PADDLE_PY.exists():
        print(
            f"no Paddle Inference column: {PADDLE_PY} does not exist (make paddle-env, or "
            f"set SSLD_ZOO_PADDLE_PYTHON)",
            file=sys.stderr,
        )
        return {}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [
        str(PADDLE_PY),
        str(ROOT / "benchmarks/paddle_inference_speed.py"),
        "--model",
        paddle_name,
        "--batch",
        *map(str, batches),
        "--threads",
        str(threads),
        "--iters",
        str(iters),
        "--size",
        str(size),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = {}
    for line in res.stdout.splitlines():
        if line.startswith("{") and "median_ms" in line:
            row = json.loads(line)
            out[row["batch"]] = float(row["median_ms"])
    if not out:
        print(f"Paddle Inference of {paddle_name} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
    return out


def run_deploy(args: argparse.Namespace, timm, console) -> None:
    """One table per model and thread count: every form at every batch, timed interleaved."""
    from rich.table import Table

    batches = [int(b) for b in str(args.batch).split(",")]
    for name in args.models.split(","):
        for threads in [int(t) for t in str(args.threads).split(",")]:
            torch.set_num_threads(threads)
            with tempfile.TemporaryDirectory() as tmp:
                forms, shared = deploy_forms(
                    name, torch.randn(2, 3, args.size, args.size), timm, threads, Path(tmp)
                )
                paddle = (
                    {}
                    if args.no_paddle
                    else time_paddle_inference(
                        get_arch(name).paddle_name, batches, threads, args.size, args.iters
                    )
                )
                results = {}
                for batch in batches:
                    x = torch.randn(batch, 3, args.size, args.size)
                    with torch.inference_mode():
                        ref = forms[0][1](x)
                        rel = [
                            float((f(x) - ref).abs().max()) / float(ref.abs().max())
                            if shared or not label.startswith("timm")
                            else None
                            for label, f in forms
                        ]
                    results[batch] = (time_forms([f for _, f in forms], x, args.iters), rel)
            table = Table(
                title=f"{name}: CPU inference, {threads} thread(s), {args.size}px, "
                f"median ms of {args.iters}, interleaved (torch "
                f"{torch.__version__}{', same weights as timm' if shared else ''})"
            )
            table.add_column("form")
            for batch in batches:
                table.add_column(f"b{batch} ms", justify="right")
                table.add_column(f"b{batch} vs timm", justify="right")
            table.add_column("max |Δ| / max |eager|", justify="right")
            labels = [label for label, _ in forms] + ["Paddle Inference + oneDNN"]
            for i, label in enumerate(labels):
                cells = []
                for batch in batches:
                    ms, _ = results[batch]
                    t = ms[i] if i < len(ms) else paddle.get(batch)
                    timm_ms = next(
                        (
                            m
                            for (lb, _), m in zip(forms, ms)
                            if lb.startswith("timm") and lb.endswith("eager")
                        ),
                        None,
                    )
                    cells += [
                        "-" if t is None else f"{t:.1f}",
                        f"{timm_ms / t:.2f}x" if t and timm_ms else "-",
                    ]
                rel = results[batches[0]][1][i] if i < len(forms) else None
                table.add_row(label, *cells, "-" if rel is None else f"{rel:.1e}")
            console.print(table)


def time_forms(forms: list[Callable], x: torch.Tensor, iters: int) -> list[float]:
    """Median ms of each callable on ``x``, interleaved (see :func:`time_torch`)."""
    times: list[list[float]] = [[] for _ in forms]
    with torch.inference_mode():
        for _ in range(3):
            for f in forms:
                f(x)
        for _ in range(iters):
            for f, t_list in zip(forms, times):
                t = time.perf_counter()
                f(x)
                t_list.append(time.perf_counter() - t)
    return [statistics.median(t) * 1e3 for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", help=f"default: {','.join(DEFAULT)} (--deploy: {','.join(DEPLOY)})")
    ap.add_argument("--threads", help="default: 1 (--deploy: 1,2)")
    ap.add_argument("--batch", help="default: 1 (--deploy: 1,8)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, help="default: 20 (--deploy: 10)")
    ap.add_argument("--no-paddle", action="store_true")
    ap.add_argument(
        "--deploy",
        action="store_true",
        help="time the inference forms (fused, channels_last, frozen) of --models",
    )
    args = ap.parse_args()
    for key, plain, deploy in (
        ("models", ",".join(DEFAULT), ",".join(DEPLOY)),
        ("threads", 1, "1,2"),
        ("batch", 1, "1,8"),
        ("iters", 20, 10),
    ):
        if getattr(args, key) is None:
            setattr(args, key, deploy if args.deploy else plain)
    if args.deploy:
        torch.set_flush_denormal(True)
    else:
        args.threads, args.batch = int(args.threads), int(args.batch)
        torch.set_num_threads(args.threads)
    try:
        import timm
    except ImportError:
        timm = None
    from rich.console import Console
    from rich.table import Table

    if args.deploy:
        return run_deploy(args, timm, Console(width=160))

    table = Table(
        title=f"CPU inference, float32, batch {args.batch}, {args.threads} thread(s), "
        f"{args.size}px, median of {args.iters} (torch {torch.__version__})"
    )
    for col in (
        "model",
        "ssld-zoo ms",
        "img/s",
        "timm twin",
        "timm ms",
        "zoo/timm speed",
        "PaddleClas ms",
        "zoo/Paddle speed",
    ):
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
        table.add_row(
            name,
            fmt(zoo_ms),
            fmt(1e3 * args.batch / zoo_ms),
            (twin + (" (same weights)" if shared else "")) if twin else "-",
            fmt(timm_ms),
            fmt(timm_ms / zoo_ms if timm_ms else None, "{:.2f}x"),
            fmt(pd_ms),
            fmt(pd_ms / zoo_ms if pd_ms else None, "{:.2f}x"),
        )
    Console(width=160).print(table)
    if "resnet50_vd" in names:
        print(
            f"ssld_zoo.load('resnet50_vd_ssld') from the converted cache: "
            f"{time_cached_load('resnet50_vd_ssld') * 1e3:.0f} ms (median of 5)"
        )


if __name__ == "__main__":
    main()
