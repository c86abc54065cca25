"""Reference outputs of a PaddleClas 2.6.0 model, for the zoo's parity tests and benchmarks.

Runs under the *paddle* venv (``tests/parity/setup_paddle_env.sh``) and never imports torch:
two deep-learning runtimes in one process fight over OpenMP/MKL.

Parity mode::

    python paddle_reference.py --model ResNet50_vd --out DIR --size 227 \\
        --features blocks.2,blocks.6,blocks.12,blocks.15 [--image photo.jpg] [--seed 0]

builds the model (``pretrained=False``), gives every BatchNorm random affine parameters and
calibrated-then-perturbed running statistics and every constant-initialised parameter some
noise (see :func:`randomize`: a port which mishandles a bias, a BN statistic or a layer scale
cannot hide behind ones and zeros, and the logits depend on the input), then writes

* ``DIR/model.pdparams``: the weights, saved with ``paddle.save`` (the real file format);
* ``DIR/inputs.npz`` (float64): ``random`` = N(0, 1) batch of 2 at SIZE x SIZE and, with
  ``--image``, ``image`` = the photo preprocessed like PaddleClas's eval (short side resized to
  256/224 of the crop, centre crop, /255, ImageNet mean/std, CHW) at ``--image-size`` (default
  SIZE);
* ``DIR/outputs.npz``: ``logits_<input>_<fp32|fp64>`` for each input, and
  ``feat_<fp32|fp64>__<name>`` = the output of sub-layer ``name`` (a dotted path from
  ``named_sublayers()``; ``path#i`` = element i of a sub-layer returning a list) on the random
  batch, captured with forward post hooks;
* ``DIR/meta.json``: versions, sizes, seed, timings.

The model runs in eval mode in float32 and, after casting every parameter and buffer, in float64.

Worker mode::

    python paddle_reference.py --serve

imports Paddle and PaddleClas once, then runs one parity job per line read from stdin (a JSON
list of the parity-mode arguments above) and answers each with one JSON line on stdout,
``{"ok": true, "wall_s": ..., "cpu_s": ..., "rss_mb": ...}`` or ``{"ok": false, "error": ...}``
(with the same timings and memory). Everything
else the libraries print goes to stderr. The parity tests use it: paying the ~4 s import once
instead of once per architecture saves minutes of CI.

Benchmark mode::

    python paddle_reference.py --model ResNet50_vd --bench 20 [--size 224]

prints one JSON line ``{"model": ..., "size": ..., "threads": 1, "median_ms": ...}``: the median
wall time of N float32 forwards of a 1x3xSIZExSIZE input on one CPU thread (after warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
_BASE = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="PaddleClas builder name, e.g. ResNet50_vd")
    p.add_argument("--out", type=Path, help="output directory (parity mode)")
    p.add_argument("--size", type=int, default=224, help="side of the random input batch")
    p.add_argument(
        "--image-size", type=int, default=None, help="crop side of the photo (default: --size)"
    )
    p.add_argument(
        "--features", default="", help="comma-separated sub-layer names whose outputs to capture"
    )
    p.add_argument("--image", type=Path, default=None, help="a photo to run as a second input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--bench",
        type=int,
        default=0,
        metavar="N",
        help="benchmark: print the median ms of N float32 forwards at batch 1",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="worker mode: parity jobs as JSON argument lists, one per stdin line",
    )
    args = p.parse_args(argv)
    if args.serve:
        return args
    if args.model is None:
        p.error("--model is required")
    if not args.bench and args.out is None:
        p.error("--out is required unless --bench is given")
    return args


def import_ppcls():
    """Import ``ppcls.arch.backbone`` from the paddleclas wheel, with 2.6.0's URL bugs patched."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    # The wheel nests its code; importing `paddleclas` itself would pull in cv2 and more.
    sys.path.insert(0, os.path.join(site, "paddleclas"))
    from ppcls.utils import logger

    logger.init_logger()
    import ppcls.arch.backbone as backbone

    _patch_model_urls()
    return backbone


def _patch_model_urls() -> None:
    """Fix three PaddleClas 2.6.0 MODEL_URLS bugs in this process, before any model is built.

    * ``SE_HRNet_W64_C`` has no entry: its builder evaluates ``MODEL_URLS["SE_HRNet_W64_C"]``
      before looking at ``pretrained``, so it raises KeyError even with ``pretrained=False``.
    * ``PPHGNet_base``'s entry is an empty string.
    * ``ResNeXt101_32x16d_wsl``'s URL says ``32x16_wsl`` (the file is ``32x16d_wsl``).
    Only the first one matters with ``pretrained=False``; the others are patched so that nobody
    reusing this helper with ``pretrained=True`` trips on them.
    """
    from ppcls.arch.backbone.legendary_models import hrnet, pp_hgnet
    from ppcls.arch.backbone.model_zoo import resnext101_wsl

    hrnet.MODEL_URLS.setdefault(
        "SE_HRNet_W64_C", _BASE + "legendary_models/SE_HRNet_W64_C_pretrained.pdparams"
    )
    if not pp_hgnet.MODEL_URLS.get("PPHGNet_base"):
        pp_hgnet.MODEL_URLS["PPHGNet_base"] = (
            _BASE + "legendary_models/PPHGNet_base_pretrained.pdparams"
        )
    url = resnext101_wsl.MODEL_URLS["ResNeXt101_32x16d_wsl"]
    resnext101_wsl.MODEL_URLS["ResNeXt101_32x16d_wsl"] = url.replace("32x16_wsl", "32x16d_wsl")


def build(backbone, name: str):
    builder = getattr(backbone, name, None)
    if builder is None:
        raise SystemExit(f"PaddleClas 2.6.0 has no backbone named {name!r}")
    model = builder(pretrained=False)
    model.eval()
    return model


def _batchnorms(model):
    """Every BatchNorm layer. Paddle has two BN families (legacy nn.BatchNorm and
    nn.BatchNorm1D/2D/...) with no common base class; both keep ``_mean``/``_variance``."""
    import paddle

    return [
        layer
        for _, layer in model.named_sublayers(include_self=True)
        if isinstance(getattr(layer, "_mean", None), paddle.Tensor)
        and isinstance(getattr(layer, "_variance", None), paddle.Tensor)
    ]


def randomize(model, seed: int, size: int, photo: np.ndarray | None = None) -> dict[str, int]:
    """Make a randomly initialised model a meaningful parity subject.

    Random init leaves BN at weight 1, bias 0, mean 0, variance 1 (identities a port could get
    wrong unnoticed), and the activations of a deep random net drift until the logits barely
    depend on the input. So:

    1. BN weight U(0.5, 1.5), bias N(0, 0.2); any other float parameter whose elements are all
       equal (zero biases, LayerNorm ones, layer scales) gets N(0, 0.05 * max(1, |c|)) noise.
    2. BN running statistics are calibrated: one train-mode forward with momentum 0 of a
       calibration batch of 6 noise images with random per-image, per-channel offset and
       contrast, distributed unlike the test inputs, so that a port which normalised with
       batch statistics at eval time would be caught. Every layer's activations are then well
       scaled and the logits depend on the input.
    3. Then perturbed so they are not exact batch statistics: mean += N(0, 0.1) * std,
       variance = max(variance, 1e-3) * U(0.8, 1.25) (positive).
    """
    import paddle

    rng = np.random.default_rng(seed + 1)

    def put(t, value: np.ndarray) -> None:
        t.set_value(value.astype(t.numpy().dtype))

    bns = _batchnorms(model)
    bn_params = set()
    for bn in bns:
        for attr, make in (
            ("weight", lambda s: rng.uniform(0.5, 1.5, s)),
            ("bias", lambda s: rng.normal(0.0, 0.2, s)),
        ):
            p = getattr(bn, attr, None)
            if p is not None:
                put(p, make(p.shape))
                bn_params.add(id(p))
    constant = 0
    for _, p in model.named_parameters():
        if id(p) in bn_params or p.dtype not in (paddle.float32, paddle.float64):
            continue
        a = p.numpy()
        if a.size and np.all(a == a.flat[0]):
            put(p, a + rng.normal(0.0, 0.05 * max(1.0, abs(float(a.flat[0]))), a.shape))
            constant += 1

    if bns:
        momenta = [bn._momentum for bn in bns]
        for bn in bns:
            bn._momentum = 0.0  # running stat = this batch's statistic
        # Each image and channel gets its own offset and contrast: with i.i.d. pixels every
        # image would pool to the same vector, and a BN after global pooling (GhostNet's
        # head) would calibrate to a ~0 variance and blow the logits up to 1e5.
        shift = rng.normal(0.3, 0.5, (6, 3, 1, 1))
        scale = rng.uniform(0.3, 1.2, (6, 3, 1, 1))
        calib = (shift + scale * rng.standard_normal((6, 3, size, size))).astype(np.float32)
        if photo is not None:
            # The photo joins the calibration batch: a BN after global pooling (GhostNet's
            # head) calibrated on noise alone normalises a real photo's pooled features to
            # 1e4-sized logits, and float32 then says nothing.
            # It and three variants (flipped, brightened, shifted) so photo-like inputs have
            # a spread of their own in every channel.
            p = _fit(photo, size)
            views = [p, p[..., ::-1], 0.8 * p + 0.2, np.roll(p, size // 4, axis=-1)]
            calib = np.concatenate([calib] + [v.astype(np.float32) for v in views])
        model.train()
        with paddle.no_grad():
            model(paddle.to_tensor(calib))
        model.eval()
        for bn, m in zip(bns, momenta):
            bn._momentum = m
        if np.all(bns[0]._mean.numpy() == 0):
            raise RuntimeError("BatchNorm calibration did not update the running statistics")
        for bn in bns:
            mean, var = bn._mean.numpy(), bn._variance.numpy()
            put(bn._mean, mean + rng.normal(0.0, 0.1, mean.shape) * np.sqrt(var))
            # The floor keeps a near-constant channel from amplifying noise 1000-fold.
            put(bn._variance, np.maximum(var, 1e-3) * rng.uniform(0.8, 1.25, var.shape))
    return {"batchnorm": len(bns), "constant_params": constant}


def _fit(x: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad or centre-crop an NCHW array to ``size`` x ``size``."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        x = np.pad(
            x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode="reflect"
        )
        h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def load_photo(path: Path, size: int) -> np.ndarray:
    """PaddleClas's eval preprocessing of one photo -> float64 array 1x3xSIZExSIZE.

    PaddleClas decodes with cv2 and converts BGR->RGB; PIL decodes to RGB directly. Both sides
    of the parity test read this saved array, so small decoder differences do not matter.
    """
    from PIL import Image

    img = Image.open(path).convert("RGB")
    short = round(size * 256 / 224)  # 256 for the usual 224 crop
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img, dtype=np.float64) / 255.0
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return x.transpose(2, 0, 1)[None].copy()


class Capture:
    """Forward post hooks that store the outputs of named sub-layers while ``active``.

    ``name`` captures a sub-layer returning a tensor; ``name#i`` element ``i`` of one returning
    a list or tuple (HRNet's stages return one tensor per branch). Outputs are stored under
    those same names.
    """

    def __init__(self, model, names: list[str]):
        layers = dict(model.named_sublayers())
        bases = list(dict.fromkeys(n.split("#", 1)[0] for n in names))
        missing = [b for b in bases if b not in layers]
        if missing:
            import difflib

            hints = {b: difflib.get_close_matches(b, list(layers), n=3) for b in missing}
            raise SystemExit(
                f"no sub-layer named {missing} in {type(model).__name__}; closest names: {hints}"
            )
        self.active = False
        self.out: dict[str, np.ndarray] = {}
        self.handles = [layers[b].register_forward_post_hook(self._hook(b)) for b in bases]

    def _hook(self, name: str):
        import paddle

        def hook(layer, inputs, output):
            if not self.active:
                return None
            # A layer called twice in one forward keeps its last output.
            if isinstance(output, paddle.Tensor):
                self.out[name] = output.numpy().copy()
            elif isinstance(output, (list, tuple)):
                for i, o in enumerate(output):
                    self.out[f"{name}#{i}"] = o.numpy().copy()
            else:
                raise TypeError(f"sub-layer {name} returned {type(output).__name__}")
            return None

        return hook


def forward(model, x: np.ndarray):
    import paddle

    with paddle.no_grad():
        y = model(paddle.to_tensor(x))
    if not isinstance(y, paddle.Tensor):
        raise TypeError(
            f"{type(model).__name__} returned {type(y).__name__} in eval mode, "
            "expected a logits tensor"
        )
    return y.numpy().copy()


def to_float64(model) -> None:
    """Cast every parameter and buffer to float64, and check that none was left behind."""
    import paddle

    model.to(dtype="float64")
    left = [
        n
        for n, t in list(model.named_parameters()) + list(model.named_buffers())
        if t.dtype == paddle.float32
    ]
    if left:
        raise RuntimeError(f"float64 cast left float32 tensors: {left[:5]}")


def run_parity(args: argparse.Namespace) -> None:
    import paddle

    t0 = time.perf_counter()
    paddle.seed(args.seed)
    backbone = import_ppcls()
    model = build(backbone, args.model)
    rng = np.random.default_rng(args.seed)
    inputs = {"random": rng.standard_normal((2, 3, args.size, args.size))}
    if args.image is not None:
        inputs["image"] = load_photo(args.image, args.image_size or args.size)
    counts = randomize(model, args.seed, args.size, inputs.get("image"))
    args.out.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(args.out / "model.pdparams"))
    t_build = time.perf_counter() - t0
    np.savez(args.out / "inputs.npz", **inputs)

    names = [n for n in args.features.split(",") if n]
    capture = Capture(model, names)
    outputs: dict[str, np.ndarray] = {}
    timings = {}
    for tag, dtype in (("fp32", np.float32), ("fp64", np.float64)):
        if tag == "fp64":
            to_float64(model)
            # Ops that make tensors at run time (paddle.full, arange, ...) follow the default.
            paddle.set_default_dtype("float64")
        t = time.perf_counter()
        for key, x in inputs.items():
            capture.active = key == "random"
            capture.out = {}
            outputs[f"logits_{key}_{tag}"] = forward(model, x.astype(dtype))
            if key == "random":
                for name, value in capture.out.items():
                    outputs[f"feat_{tag}__{name}"] = value
                absent = [n for n in names if n not in capture.out]
                if absent:
                    raise SystemExit(
                        f"no output {absent} in the forward pass (captured: "
                        f"{sorted(capture.out)}); a list output is name#i"
                    )
        timings[f"forward_{tag}_s"] = round(time.perf_counter() - t, 3)
    paddle.set_default_dtype("float32")  # a worker's next job starts where a new process would
    np.savez(args.out / "outputs.npz", **outputs)

    from importlib.metadata import version

    meta = {
        "model": args.model,
        "size": args.size,
        "image_size": args.image_size or args.size,
        "image": str(args.image) if args.image else None,
        "seed": args.seed,
        "features": names,
        "randomized": counts,
        "paddle": paddle.__version__,
        "paddleclas": version("paddleclas"),
        "build_s": round(t_build, 3),
        **timings,
        "total_s": round(time.perf_counter() - t0, 3),
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))


def run_bench(args: argparse.Namespace) -> None:
    import paddle

    backbone = import_ppcls()
    model = build(backbone, args.model)
    x = (
        np.random.default_rng(args.seed)
        .standard_normal((1, 3, args.size, args.size))
        .astype(np.float32)
    )
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        forward(model, x)
    times = []
    for _ in range(args.bench):
        t = time.perf_counter()
        forward(model, x)
        times.append((time.perf_counter() - t) * 1000)
    print(
        json.dumps(
            {
                "model": args.model,
                "size": args.size,
                "threads": 1,
                "paddle": paddle.__version__,
                "runs": args.bench,
                "median_ms": round(float(np.median(times)), 3),
            }
        )
    )


def _rss_mb() -> float:
    """This process's resident memory now (Linux), in MiB; 0 where /proc is not there."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def serve() -> None:
    """Worker mode: parity jobs from stdin, one JSON answer line each on the real stdout."""
    import gc

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what Paddle, PaddleClas or print() write must not mix with the answers
    sys.stdout = sys.stderr
    import paddle

    import_ppcls()
    for line in sys.stdin:
        t, cpu = time.perf_counter(), time.process_time()
        try:
            # A fresh name space per job, as in a new process: PaddleClas's older model files
            # name their parameters explicitly, and dygraph refuses a name used before.
            with paddle.utils.unique_name.guard():
                run_parity(parse_args(json.loads(line)))
            answer = {"ok": True}
        except (Exception, SystemExit) as e:  # a failed job, not a failed worker
            import traceback

            answer = {"ok": False, "error": "".join(traceback.format_exception(e))[-4000:]}
        gc.collect()  # the last model's tensors, before the next one is built
        answer.update(
            wall_s=time.perf_counter() - t, cpu_s=time.process_time() - cpu, rss_mb=_rss_mb()
        )
        answers.write(json.dumps(answer) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve:
        serve()
    elif args.bench:
        # Must happen before paddle (and its BLAS/OpenMP runtimes) is imported.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = "1"
        run_bench(args)
    else:
        run_parity(args)


if __name__ == "__main__":
    main()
