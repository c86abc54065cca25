"""Time of ``ssld-zoo to FORMAT`` (load + convert + check by running the target network +
write) for every format, and the families x formats table of the largest feature difference.

    python benchmarks/convert_speed.py [--threads 2] [--repeats 3]

Weights are random (BatchNorm statistics and affine, and PP-HGNetV2's learnable affine
blocks, randomised so that a misplaced tensor would show), saved to a temp file and passed
with ``--weights``: nothing is downloaded. The timed command is the CLI's own entry point,
in-process, after one untimed warm-up run per format (imports of timm / transformers /
mmdet); the figure is the median of ``--repeats`` runs. Each family is represented by one
architecture; a family with no twin in a format shows "no twin". A format whose library is
not installed (mmdet) says so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch

# One architecture per family (the family's first twin in each format is picked from it).
FAMILIES = {
    "resnet_vd": "resnet50_vd",
    "pp_hgnet_v2": "pphgnetv2_b4",
    "pp_hgnet": "pphgnet_tiny",
    "pp_lcnet": "pplcnet_x1_0",
    "pp_lcnet_v2": "pplcnetv2_base",
    "mobilenet_v1": "mobilenetv1",
    "mobilenet_v2": "mobilenetv2",
    "mobilenet_v3": "mobilenetv3_large_x1_0",
    "ghostnet": "ghostnet_x1_3",
    "res2net_vd": "res2net50_vd_26w_4s",
    "hrnet": "hrnet_w18_c",
    "resnext_wsl": "resnext101_32x8d_wsl",
    "nextvit": "nextvit_small_224",
}
# What "converting one ResNet50_vd for every format" runs (D-FINE has no ResNet: its B4).
TIMED = {
    "timm": "resnet50_vd",
    "mmdet": "resnet50_vd",
    "hf": "resnet50_vd",
    "rtdetr": "resnet50_vd",
    "dfine": "pphgnetv2_b4",
}


def randomised(name: str, seed: int = 0) -> torch.nn.Module:
    import ssld_zoo

    torch.manual_seed(seed)
    model = ssld_zoo.load(name, pretrained=False).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif type(m).__name__ == "LearnableAffineBlock":
            m.scale.data.fill_(0.9)
            m.bias.data.fill_(0.05)
    return model


def cli_seconds(fmt: str, name: str, weights: Path, out: Path) -> float:
    from ssld_zoo.cli.main import main

    sink = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = main(["to", fmt, name, str(out), "--weights", str(weights)])
    seconds = time.perf_counter() - started
    if "not checked" in sink.getvalue():
        raise ImportError(sink.getvalue().split("not checked:", 1)[1].splitlines()[0].strip())
    if code != 0 or "checked" not in sink.getvalue():
        raise SystemExit(f"ssld-zoo to {fmt} {name} failed or did not check:\n{sink.getvalue()}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file

    from ssld_zoo.interop import convert, get_format, list_formats

    print(f"torch {torch.__version__}, {args.threads} threads, CPU\n")
    print("| format | model | load + convert + check + write (s) |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fmt, name in TIMED.items():
            weights = tmp / f"{name}.safetensors"
            if not weights.exists():
                save_file(randomised(name).state_dict(), str(weights))
            suffix = get_format(fmt).suffix
            try:
                cli_seconds(fmt, name, weights, tmp / f"warm_{fmt}{suffix}")  # imports
                seconds = statistics.median(
                    cli_seconds(fmt, name, weights, tmp / f"{fmt}_{name}{suffix}")
                    for _ in range(args.repeats)
                )
                print(f"| {fmt} | {name} | {seconds:.2f} |")
            except ImportError as e:
                print(f"| {fmt} | {name} | not run: {e} |")

    print(
        "\nLargest absolute per-stage feature difference (timm: logits), fp32, 64x64 batch "
        "of 2, random weights:\n"
    )
    formats = list_formats()
    print("| family | " + " | ".join(formats) + " |")
    print("|---|" + "---|" * len(formats))
    from ssld_zoo.registry import get_arch, list_architectures

    for family, example in FAMILIES.items():
        cells = []
        for fmt in formats:
            f = get_format(fmt)
            twins = [
                a for a in list_architectures() if get_arch(a).family == family and a in f.targets()
            ]
            if not twins:
                cells.append("no twin")
                continue
            arch = example if example in twins else twins[0]
            try:
                model, converted = convert(fmt, randomised(arch))
                cells.append(f"{f.check(model, converted):.1e} ({arch})")
            except ImportError:
                cells.append(f"{arch}: library not installed")
        print(f"| {family} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
