"""``ssld-zoo export NAME|FILE --format onnx|aoti|pt2|torchscript``: a deployable model file,
its JSON card, and a check of the file against eager PyTorch."""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

from ssld_zoo.cli._console import console

_DESCRIPTION = """\
Export a zoo model to ONNX, an AOTInductor package (aoti: compiled ahead of time, loadable
with torch._inductor.aoti_load_package without the model's code; the fastest file), a
torch.export program (pt2) or TorchScript (deprecated by torch 2.14), write its card
(<out>.json: input size, preprocessing, outputs, class names, source weights, versions), then
run the file on an image through the card's preprocessing and compare it with eager PyTorch
(exit 1 beyond a relative tolerance of 1e-3; 0.1 and the same top-1 for --precision bf16).
For int8, see `ssld-zoo quantize`.

NAME|FILE is a registered name (resnet50_vd_ssld; its published weights, or --weights FILE) or a
weights file (.safetensors, .pth, .pdparams) together with its architecture, --arch NAME."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export to ONNX / AOTInductor / pt2 / TorchScript, with a card, checked",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="NAME|FILE",
        help="registered name (resnet50_vd_ssld) or a weights file (with --arch)",
    )
    p.add_argument(
        "--format",
        default="onnx",
        metavar="FORMAT",
        help="onnx (default), aoti, pt2 or torchscript (deprecated)",
    )
    p.add_argument("--arch", help="architecture of a weights FILE, e.g. resnet50_vd")
    p.add_argument(
        "--weights", help="weights file (or weight name) for NAME instead of its published weights"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="model file to write (default: NAME.onnx / .aoti.pt2 / .pt2 / .torchscript.pt here)",
    )
    p.add_argument(
        "--features",
        action="store_true",
        help="export the backbone: outputs are the stage feature maps, no classifier",
    )
    p.add_argument(
        "--out-indices",
        type=int,
        nargs="+",
        metavar="I",
        help="stages --features returns (default: all); implies --features",
    )
    p.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="any batch size (onnx, aoti, pt2; TorchScript always takes any)",
    )
    p.add_argument(
        "--fuse",
        action="store_true",
        help="re-parameterise and fold BatchNorm first (ssld_zoo.deploy.fuse)",
    )
    p.add_argument(
        "--image",
        type=Path,
        help="image to check the export on (default: a synthetic test pattern)",
    )
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16"),
        help="bf16: compute in bfloat16 (float32 input and outputs); fast on CPUs "
        "with AVX512-BF16/AMX and recent GPUs",
    )
    p.set_defaults(func=run)


def _looks_like_file(text: str) -> bool:
    from ssld_zoo.weights.files import SUFFIXES

    return os.path.exists(text) or text.lower().endswith(SUFFIXES) or os.sep in text


def _resolve(args: argparse.Namespace) -> tuple[str, str | None]:
    """(the name to load, the weights to load into it) from MODEL, --arch and --weights."""
    if _looks_like_file(args.model):
        if args.weights:
            raise ValueError(
                f"{args.model} is a weights file: give weights once, as FILE or as --weights"
            )
        if not args.arch:
            raise ValueError(
                f"{args.model} is a weights file: name its architecture with "
                f"--arch (e.g. --arch resnet50_vd)"
            )
        if not os.path.isfile(args.model):
            raise FileNotFoundError(f"weights file {args.model} does not exist")
        return args.arch, args.model
    if args.arch:
        raise ValueError(
            f"--arch is for a weights FILE; {args.model!r} is a name (use "
            f"--weights FILE to load other weights into it)"
        )
    return args.model, args.weights


def run(args: argparse.Namespace) -> int:
    import ssld_zoo
    from ssld_zoo.deploy.export import (
        check_export,
        ensure_writable,
        export_model,
        suffix_for,
        synthetic_image,
        weights_source,
        write_card,
    )
    from ssld_zoo.preprocess import decode_image

    # Everything that can be refused is refused before the model is built and exported.
    suffix = suffix_for(args.format)
    if args.opset is not None and args.format != "onnx":
        raise ValueError(f"--opset applies to --format onnx only, not {args.format!r}")
    name, weights = _resolve(args)
    features = args.features or args.out_indices is not None
    if args.image is not None:
        image, label = decode_image(args.image), str(args.image)
    else:
        image, label = synthetic_image(), "a synthetic test pattern (no --image given)"
    stem = Path(args.model).name.split(".")[0] if weights == args.model else name
    out = args.out or Path(f"{stem}{'_features' if features else ''}{suffix}")
    ensure_writable(out)

    if args.format == "torchscript":
        console.print(
            "[yellow]note:[/] TorchScript is deprecated by torch 2.14; --format aoti, "
            "pt2 or onnx are the formats of today",
            highlight=False,
        )
    model = ssld_zoo.load(
        name, weights=weights, features_only=features, out_indices=args.out_indices
    )
    # fuse and bf16 rewrite the model in place: the check compares with the model as loaded
    reference = copy.deepcopy(model) if args.fuse or args.precision != "fp32" else model
    card = export_model(
        model,
        out,
        args.format,
        dynamic_batch=args.dynamic_batch,
        opset=args.opset,
        fuse=args.fuse,
        name=name,
        source=weights_source(model, weights),
        precision=args.precision,
    )
    what = (
        [
            args.format + (f" opset {card['opset']}" if card["opset"] else ""),
            "dynamic batch" if card["dynamic_batch"] else "batch 1",
            f"{len(card['outputs'])} feature maps"
            if features
            else f"{card['num_classes']} classes",
        ]
        + (["fused"] if args.fuse else [])
        + (["bf16"] if args.precision == "bf16" else [])
    )
    console.print(
        f"[green]wrote[/] {out} ({', '.join(what)}; "
        f"{out.stat().st_size / 2**20:.1f} MiB) and its card {out}.json"
    )

    result = check_export(out, reference, image, label)
    card["check"] = result.to_dict()
    write_card(out, card)
    top1 = (
        ""
        if result.top1_agrees is None
        else f", top-1 {'agrees' if result.top1_agrees else 'DIFFERS'}"
    )
    verdict = "[green]OK[/]" if result.passed else "[bold red]FAILED[/]"
    console.print(
        f"check on {label}, batch {' and '.join(map(str, result.batch_sizes))}, "
        f"through the card's preprocessing: max |{args.format} - eager| = "
        f"{result.max_abs_diff:.3g} ({result.worst_output}; tolerance "
        f"{result.tolerance:.3g}){top1}: {verdict}",
        highlight=False,
    )
    return 0 if result.passed else 1
