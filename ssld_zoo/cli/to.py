"""``ssld-zoo to FORMAT NAME OUT [--weights FILE] [--no-check]``.

Writes a zoo model's weights in the layout other code loads (:mod:`ssld_zoo.interop`):
``timm``, ``mmdet``, ``hf``, ``rtdetr``, ``dfine``. Before writing, the target network is run
with the converted weights and its features compared with ours (unless ``--no-check``); an
architecture without a twin in the layout is refused with the reason.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ssld_zoo.cli._console import console

# The format names and one line each, kept here so that ``ssld-zoo --help`` imports no
# conversion module (tests/interop checks they equal the registered formats).
FORMATS = {
    "timm": "timm's model of the same network (.safetensors)",
    "mmdet": "MMDetection/MMPretrain ResNetV1d, init_cfg Pretrained (.pth)",
    "hf": "transformers RTDetrResNetBackbone / HGNetV2Backbone (folder, from_pretrained)",
    "rtdetr": "RT-DETR/RT-DETRv2 PResNet backbone (.pth)",
    "dfine": "D-FINE/DEIM/DEIMv2 HGNetv2 backbone, PPHGNetV2_B*_stage1.pth (.pth)",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "to",
        help="write a model's weights for timm, MMDetection, transformers, RT-DETR, D-FINE",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert NAME's weights to FORMAT's layout, after checking that the target\n"
        "network loaded with them computes our features.",
        epilog="formats:\n"
        + "\n".join(f"  {k:<7} {v}" for k, v in FORMATS.items())
        + "\nwhich names each format takes: docs/detectors.md, MODEL_ZOO.md",
    )
    p.add_argument("format", choices=sorted(FORMATS), help="the layout to write")
    add_arguments(p)


def add_arguments(p: argparse.ArgumentParser, format_name: str | None = None) -> None:
    p.add_argument("name", help="model or weight name, e.g. resnet50_vd_ssld")
    p.add_argument("output", type=Path, help="the file (folder for hf) to write")
    p.add_argument(
        "--weights",
        help="a weights file (or registered weight name) to convert "
        "instead of NAME's published weights",
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip running the target network before writing"
    )
    p.set_defaults(func=run)
    if format_name:
        p.set_defaults(format=format_name)


def run(args: argparse.Namespace) -> int:
    from ssld_zoo.interop import convert, get_format
    from ssld_zoo.registry import get_arch

    fmt = get_format(args.format)
    out: Path = args.output
    fmt.check_output_path(out)
    fmt.refuse_unless_supported(get_arch(args.name).name)  # before any download
    started = time.perf_counter()
    model, converted = convert(args.format, args.name, weights=args.weights)
    if not args.no_check:
        try:
            diff = fmt.check(model, converted)
            console.print(
                f"checked: {converted.target} computes our features (max difference {diff:.2g})"
            )
        except ImportError as e:
            console.print(f"[yellow]not checked[/]: {e}")
    fmt.write(converted, out)
    console.print(
        f"[green]wrote[/] {out} ({len(converted.state)} tensors) for "
        f"[bold]{converted.target}[/] in {time.perf_counter() - started:.1f} s"
    )
    # print(), not rich: the line is code to copy, so it must not be wrapped or highlighted.
    print(fmt.usage(converted, out))
    return 0
