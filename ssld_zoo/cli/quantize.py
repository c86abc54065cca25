"""``ssld-zoo quantize NAME|FILE --data UNLABELED_DIR``: an int8 model from unlabeled images,
by label-free quantization-aware distillation (default) or post-training quantization."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from ssld_zoo.cli._console import console

_DESCRIPTION = """\
Quantize a zoo model to int8 (PT2E, torchao's x86 Inductor quantizer) using only unlabeled
images: no labels are read.

  --method qat (default): quantization-aware distillation. The fp32 model is the teacher, its
      fake-quantized copy the student, trained with SSLD's symmetric KL on random views of the
      DATA images for --steps steps, then converted to int8.
  --method ptq: post-training quantization, calibrated on --calib DATA images.

Then it reports the top-1 agreement of the int8 model with the fp32 model on --check DATA
images (centre crops) and writes the int8 model (--format aoti: an AOTInductor package;
pt2: a torch.export program; onnx: ONNX QDQ for onnxruntime) with a JSON card <out>.json.

NAME|FILE is a registered name (its published weights, or --weights FILE) or a weights file
together with its architecture, --arch NAME (and --num-classes N for a head other than 1000)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="int8 from unlabeled images (QAT-distillation or PTQ)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="NAME|FILE",
        help="registered name (pplcnet_x1_0_ssld) or a weights file (with --arch)",
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="UNLABELED_DIR",
        help="folder of images (any layout, searched recursively) or a list file",
    )
    p.add_argument("--arch", help="architecture of a weights FILE, e.g. pplcnet_x1_0")
    p.add_argument("--weights", help="weights file for NAME instead of its published weights")
    p.add_argument("--num-classes", type=int, help="classifier outputs of a weights FILE")
    p.add_argument("--method", default="qat", choices=("qat", "ptq"))
    p.add_argument("--steps", type=int, default=300, help="qat: optimisation steps")
    p.add_argument("--lr", type=float, default=1e-3, help="qat: peak SGD learning rate")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--calib", type=int, default=256, help="ptq: images to calibrate on")
    p.add_argument(
        "--check",
        type=int,
        default=256,
        help="images to measure the int8 vs fp32 top-1 agreement on",
    )
    p.add_argument(
        "--image-size", type=int, help="input size (default: that of the model's weights)"
    )
    p.add_argument("--format", default="aoti", choices=("aoti", "pt2", "onnx"))
    p.add_argument("--out", type=Path, help="file to write (default: NAME.int8.aoti.pt2 ...)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    import ssld_zoo
    from ssld_zoo.cli.export import _resolve
    from ssld_zoo.data.images import read_image, scan_unlabeled
    from ssld_zoo.deploy.export import ensure_writable, weights_source, write_card
    from ssld_zoo.deploy.quantize import INT8_FORMATS, quantize_ptq, save_int8
    from ssld_zoo.distill.quantize import distill_quantized, unlabeled_batches
    from ssld_zoo.preprocess import eval_transform_of

    for key in ("steps", "batch_size", "calib", "check"):
        if getattr(args, key) < 1:
            raise ValueError(
                f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}"
            )
    if args.batch_size < 2:
        raise ValueError(
            f"--batch-size must be at least 2 (int8 graphs are captured with a "
            f"dynamic batch), got {args.batch_size}"
        )
    name, weights = _resolve(args)
    paths = scan_unlabeled(args.data)
    stem = Path(args.model).name.split(".")[0] if weights == args.model else name
    out = args.out or Path(f"{stem}{INT8_FORMATS[args.format]}")
    ensure_writable(out)

    model = _load(name, weights, args.num_classes)
    transform = eval_transform_of(model, name)
    if args.image_size:
        transform = transform.replace(
            input_size=args.image_size,
            resize=round(args.image_size * transform.resize / transform.input_size),
        )
    size, mean, std = transform.input_size, transform.mean, transform.std
    reference = copy.deepcopy(model)
    console.print(
        f"{args.method}: {name} ({'weights ' + str(weights) if weights else 'its '}"
        f"{'' if weights else 'published weights'}), {len(paths)} unlabeled images "
        f"in {args.data}, {size} px",
        highlight=False,
    )
    if args.method == "qat":
        batches = unlabeled_batches(paths, size, mean, std, args.batch_size)

        def progress(step: int, loss: float) -> None:
            if step == 0 or (step + 1) % max(1, args.steps // 10) == 0:
                console.print(
                    f"  step {step + 1}/{args.steps}: SSLD loss {loss:.4f}", highlight=False
                )

        quantized = distill_quantized(model, batches, args.steps, lr=args.lr, on_step=progress)
    else:
        calib = _eval_batches(paths[: args.calib], transform, args.batch_size, read_image)
        quantized = quantize_ptq(model, calib)

    # agreement on the last --check images (the first ones calibrate a PTQ run)
    check = _eval_batches(paths[-args.check :], transform, args.batch_size, read_image)
    agree = total = 0
    worst = 0.0
    with torch.no_grad():
        for x in check:
            ref, got = reference(x), quantized(x)
            agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
            total += x.shape[0]
            worst = max(worst, float((ref - got).abs().max() / ref.abs().max()))
    console.print(
        f"int8 vs fp32 on {total} images of {args.data}: top-1 agreement "
        f"{100 * agree / max(total, 1):.1f}%, max |Δ| / max |fp32| {worst:.3f}",
        highlight=False,
    )

    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    save_int8(quantized, out, args.format, example)
    card = {
        "format": args.format,
        "file": out.name,
        "name": name,
        "precision": "int8",
        "method": args.method,
        "data": str(args.data),
        "images": len(paths),
        "steps": args.steps if args.method == "qat" else None,
        "calibration_images": min(args.calib, len(paths)) if args.method == "ptq" else None,
        "input": {
            "name": "input",
            "shape": ["batch", 3, size, size],
            "dtype": "float32",
            "layout": "NCHW",
        },
        "preprocess": transform.to_dict(),
        "check": {"images": total, "top1_agreement": agree / max(total, 1), "max_rel_diff": worst},
        "source": weights_source(reference, weights),
        "versions": {"ssld_zoo": ssld_zoo.__version__, "torch": torch.__version__},
    }
    write_card(out, card)
    console.print(
        f"[green]wrote[/] {out} (int8 {args.format}; "
        f"{out.stat().st_size / 2**20:.1f} MiB) and its card {out}.json"
    )
    return 0


def _load(name: str, weights: str | None, num_classes: int | None):
    """The model of NAME with its weights; with ``num_classes``, a head of that size built
    first, so that a weights file of that head (a student trained here) loads into it."""
    import ssld_zoo

    if num_classes is None or weights is None:
        return ssld_zoo.load(name, weights=weights, num_classes=num_classes)
    from ssld_zoo.weights.source import load_weights, parse_source

    model = ssld_zoo.load(name, pretrained=False, num_classes=num_classes)
    model.load_state_dict(load_weights(parse_source(weights), model.arch_name, fits=model).state)
    return model.eval()


def _eval_batches(paths: list[str], transform, batch_size: int, read_image):
    """Normalised centre-crop batches of the readable images at ``paths``."""
    import torch

    build = transform.build()
    batch = []
    for p in paths:
        image = read_image(p)
        if image is not None:
            batch.append(build(image))
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)
