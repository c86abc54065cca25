"""int8 and bf16 accuracy on real photos: fp32 vs PTQ vs label-free QAT-distillation.

Real ImageNet weights cannot be downloaded here, so the model is one this script trains itself
on real photos: a small zoo architecture (default ``pplcnet_x0_5``) from scratch on Imagenette
(``../shared/data/imagenette``: 4,000 labeled train photos, 10 classes), at 96 px, with plain
cross-entropy. Its fp32 checkpoint is kept in ``--work-dir`` and reused by later runs. Then,
with **no labels** (the 5,000 unlabeled ``pool/`` photos):

- ``bf16``: the fp32 model run in bfloat16 (``ssld_zoo.deploy.to_precision``);
- ``int8 PTQ``: PT2E post-training quantization (torchao's ``X86InductorQuantizer``),
  calibrated on ``--calib`` pool photos (``ssld_zoo.deploy.quantize_ptq``);
- ``int8 QAT-distilled``: the fake-quantized copy trained against the fp32 model with SSLD's
  symmetric KL on pool photos (``ssld_zoo.distill.distill_quantized``), then converted;
- ``onnxruntime int8 (QDQ)``: both int8 models' ONNX QDQ exports run in onnxruntime.

Each row: top-1 on the 1,966 Imagenette val photos, the top-1 agreement with fp32 and the
largest logit difference relative to fp32's largest logit.

    # train (once: 12 epochs, 5 min on an idle 2-core CPU, 1 thread), then measure
    python benchmarks/int8_accuracy.py
    python benchmarks/int8_accuracy.py --epochs 2 --qat-steps 20   # a quick smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_images(paths: list[str], size: int) -> torch.Tensor:
    """The photos as one uint8 NCHW tensor, short side resized to ``size``, centre-cropped."""
    from torchvision.transforms import v2 as T

    from ssld_zoo.preprocess import decode_image as read_image

    resize = T.Compose([T.Resize(size, antialias=True), T.CenterCrop(size), T.PILToTensor()])
    return torch.stack([resize(read_image(p)) for p in paths])


def normalize(batch: torch.Tensor) -> torch.Tensor:
    return (batch.float() / 255 - MEAN) / STD


def random_views(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random square crop of ``size`` (scale 0.35-1 of the stored image, resized) and a random
    horizontal flip of each image: cheap augmentation on the preloaded tensor."""
    n, _, h, _ = images.shape
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        side = int(h * math.sqrt(0.35 + 0.65 * float(torch.rand(1, generator=generator))))
        top, left = (
            int(torch.randint(0, h - side + 1, (1,), generator=generator)) for _ in range(2)
        )
        crop = images[i : i + 1, :, top : top + side, left : left + side].float()
        view = F.interpolate(
            crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i] = view[0].flip(-1) if torch.rand(1, generator=generator) < 0.5 else view[0]
    return (out / 255 - MEAN) / STD


def train_fp32(arch: str, images: torch.Tensor, labels: torch.Tensor, args) -> nn.Module:
    import ssld_zoo

    model = ssld_zoo.load(arch, pretrained=False, num_classes=10)
    steps_per_epoch = len(images) // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=4e-5
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=total, pct_start=0.15
    )
    g = torch.Generator().manual_seed(0)
    model.train()
    t0 = time.time()
    for epoch in range(args.epochs):
        order = torch.randperm(len(images), generator=g)
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            x = random_views(images[idx], args.size, g)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)",
            flush=True,
        )
    return model.eval()


def center(images: torch.Tensor, size: int) -> torch.Tensor:
    """The eval view: the centre ``size`` crop of the stored images (stored at size / 0.875)."""
    h = images.shape[-1]
    o = (h - size) // 2
    return normalize(images[:, :, o : o + size, o : o + size])


@torch.no_grad()
def logits_of(run, images: torch.Tensor, size: int, batch: int = 100) -> torch.Tensor:
    return torch.cat(
        [run(center(images[i : i + batch], size)).float() for i in range(0, len(images), batch)]
    )


def measure(
    model: nn.Module,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    pool: list[str],
    stored: int,
    args,
    work: Path,
) -> None:
    """Every row of the table (see the module docstring), printed as markdown."""
    import copy

    from ssld_zoo.deploy import to_precision
    from ssld_zoo.deploy.quantize import load_int8, quantize_ptq, save_int8
    from ssld_zoo.distill.quantize import distill_quantized

    size, n = args.size, len(val_y)
    t = time.time()
    pool_x = load_images(pool, stored)  # unlabeled: no label is ever read from the pool
    print(f"loaded {len(pool_x)} unlabeled pool photos ({time.time() - t:.0f} s)")
    fp32 = logits_of(model, val_x, size)
    rows = [("fp32 (trained here, labels)", fp32, "-")]
    bf16 = to_precision(copy.deepcopy(model), "bf16")
    rows.append(("bf16", logits_of(bf16, val_x, size), "-"))

    t = time.time()
    calib = [center(pool_x[i : i + 32], size) for i in range(0, args.calib, 32)]
    ptq = quantize_ptq(copy.deepcopy(model), calib)
    rows.append(
        (
            "int8 PTQ (PT2E, x86 Inductor quantizer)",
            logits_of(ptq, val_x, size),
            f"{args.calib} pool photos, {time.time() - t:.0f} s",
        )
    )

    def batches():
        g = torch.Generator().manual_seed(1)
        while True:
            idx = torch.randint(0, len(pool_x), (args.batch,), generator=g)
            yield random_views(pool_x[idx], size, g)

    t = time.time()
    losses: list[float] = []
    qat = distill_quantized(
        copy.deepcopy(model),
        batches(),
        args.qat_steps,
        lr=args.qat_lr,
        on_step=lambda step, loss: losses.append(loss),
    )
    print(
        f"QAT-distillation: SSLD loss {losses[0]:.4f} -> "
        f"{sum(losses[-10:]) / len(losses[-10:]):.4f} (mean of the last 10 steps)"
    )
    rows.append(
        (
            "int8 QAT-distilled (SSLD loss, no labels)",
            logits_of(qat, val_x, size),
            f"{args.qat_steps} steps x {args.batch} pool views, {time.time() - t:.0f} s",
        )
    )
    example = center(pool_x[:2], size)
    for label, quantized in (("PTQ", ptq), ("QAT-distilled", qat)):
        path = save_int8(quantized, work / f"{args.arch}_{label}.int8.onnx", "onnx", example)
        rows.append(
            (
                f"onnxruntime int8 QDQ, {label}",
                logits_of(load_int8(path, "onnx"), val_x, size),
                "same model",
            )
        )

    top1_fp32 = float((fp32.argmax(-1) == val_y).float().mean()) * 100
    print(
        f"\n{args.arch} at {size} px, Imagenette val ({n} real photos), CPU "
        f"(torch {torch.__version__}):\n"
    )
    print(
        "| model | top-1 % | vs fp32 (points) | top-1 agreement with fp32 % "
        "| max abs logit diff / max abs fp32 logit | data used, time |"
    )
    print("|---|---:|---:|---:|---:|---|")
    scale = float(fp32.abs().max())
    for label, logits, note in rows:
        top1 = float((logits.argmax(-1) == val_y).float().mean()) * 100
        agree = float((logits.argmax(-1) == fp32.argmax(-1)).float().mean()) * 100
        diff = float((logits - fp32).abs().max()) / scale
        print(
            f"| {label} | {top1:.1f} | {top1 - top1_fp32:+.1f} | {agree:.1f} | {diff:.3f} "
            f"| {note} |"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        default=str(
            Path(os.environ.get("SSLD_ZOO_TEST_DATA", REPO.parent / "shared" / "data"))
            / "imagenette"
        ),
    )
    p.add_argument("--arch", default="pplcnet_x0_5")
    p.add_argument("--size", type=int, default=96, help="train and eval input size")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--calib", type=int, default=256, help="pool photos PTQ calibrates on")
    p.add_argument("--qat-steps", type=int, default=150)
    p.add_argument("--qat-lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work-dir", default="work_dirs/int8_accuracy")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from ssld_zoo.data.images import scan_image_folder, scan_unlabeled

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    stored = round(args.size / 0.875)
    classes, train = scan_image_folder(Path(args.data, "train"))
    _, val = scan_image_folder(Path(args.data, "val"))
    pool = scan_unlabeled(Path(args.data, "pool"))
    t = time.time()
    val_x = load_images([s for s, _ in val], stored)
    val_y = torch.tensor([classes.index(c) for _, c in val])
    ckpt = work / f"{args.arch}_{args.size}px_{args.epochs}ep.pt"
    import ssld_zoo

    if ckpt.is_file():
        model = ssld_zoo.load(args.arch, pretrained=False, num_classes=10).eval()
        model.load_state_dict(torch.load(ckpt, weights_only=True))
        print(f"fp32 model from {ckpt}")
    else:
        train_x = load_images([s for s, _ in train], stored)
        train_y = torch.tensor([classes.index(c) for _, c in train])
        print(f"loaded {len(train_x)} train / {len(val_x)} val photos ({time.time() - t:.0f} s)")
        model = train_fp32(args.arch, train_x, train_y, args)
        tmp = ckpt.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, ckpt)
        del train_x
    measure(model, val_x, val_y, pool, stored, args, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
