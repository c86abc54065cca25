"""Export a zoo model for deployment, write a card that says how to feed it, check the file.

Four formats, each a single file:

- ``aoti``: ``torch.export.export`` compiled ahead of time by AOTInductor into a package
  (``torch._inductor.aoti_compile_and_package``, with Inductor's freezing): native kernels and
  the weights in one ``.pt2`` that ``torch._inductor.aoti_load_package`` runs without the
  model's Python code; the fastest file (``benchmarks/inference_speed.py --deploy``);
- ``onnx``: ``torch.onnx.export(dynamo=True)``, the torch.export-based exporter (the legacy
  TorchScript-based one is deprecated since torch 2.9; both gave the same outputs on every
  family), run with onnxruntime;
- ``pt2``: ``torch.export.export`` + ``torch.export.save``, ``torch.export.load``;
- ``torchscript`` (**deprecated**: torch 2.14 deprecates ``torch.jit.script``; kept while torch
  has it): ``torch.jit.script`` (control flow kept; any batch size), ``torch.jit.load``.

``precision="bf16"`` exports the model in bfloat16 behind a float32 input and output
(:class:`ssld_zoo.deploy.optimize.BFloat16Model`); its check tolerance is :data:`BF16_RTOL`.

Beside the model file, ``<file>.json`` (the card) records what a deployment needs: the input
size and preprocessing (resize, crop, interpolation, mean, std), the outputs (logits with the
class names, or the feature maps with their channels and strides), the weights it came from
(name, URL, sha256), and the format, opset, batch mode, fusing and versions used.

>>> card = export_model(model, "r50.onnx", "onnx", dynamic_batch=True)   # doctest: +SKIP
>>> check_export("r50.onnx", model, image).passed                        # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ssld_zoo.deploy.fuse import fuse as fuse_model
from ssld_zoo.deploy.optimize import INDUCTOR_OPTIONS, to_precision
from ssld_zoo.preprocess import eval_transform_of, weight_card_of
from ssld_zoo.registry import EvalTransform
from ssld_zoo.weights.export import card_path
from ssld_zoo.weights.fileops import atomic_write, sha256_of
from ssld_zoo.weights.trust import recorded_sha256

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "RTOL",
    "BF16_RTOL",
    "export_model",
    "check_export",
    "CheckResult",
    "load_exported",
    "read_card",
    "write_card",
    "card_path",
    "transform_of_card",
    "weights_source",
    "synthetic_image",
    "suffix_for",
]

FORMATS = ("onnx", "aoti", "pt2", "torchscript")
SUFFIXES = {"onnx": ".onnx", "aoti": ".aoti.pt2", "pt2": ".pt2", "torchscript": ".torchscript.pt"}
# An export passes its check when every output is within RTOL x (its largest |eager| value).
RTOL = 1e-3
# bfloat16 keeps 8 mantissa bits: each layer rounds to ~0.4%, and deep nets accumulate it
# (measured on real photos: benchmarks/int8_accuracy.py); its check also asks for the top-1.
BF16_RTOL = 0.1
INPUT_NAME = "input"
MAX_BATCH = 4096  # upper bound of the dynamic batch dimension (torch.export needs one)


def suffix_for(format: str) -> str:
    """The file suffix of ``format``; an unknown format raises ``ValueError``."""
    if format not in SUFFIXES:
        raise ValueError(f"unknown export format {format!r}: expected one of {', '.join(FORMATS)}")
    return SUFFIXES[format]


# --------------------------------------------------------------------------- export


@torch.no_grad()
def export_model(
    model: nn.Module,
    out: str | os.PathLike,
    format: str = "onnx",
    *,
    dynamic_batch: bool = False,
    opset: int | None = None,
    fuse: bool = False,
    transform: EvalTransform | None = None,
    name: str | None = None,
    source: dict[str, Any] | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Export ``model`` (switched to eval mode) to ``out``; write its card ``<out>.json``.

    Args:
        model: a zoo classifier, or a ``features_only`` model (its list of feature maps
            becomes the outputs ``features.0``, ``features.1``, ...).
        out: the model file to write (atomically, as the card).
        format: ``onnx``, ``aoti``, ``pt2`` or ``torchscript`` (deprecated).
        dynamic_batch: export with a symbolic batch dimension (``onnx``, ``aoti``, ``pt2``);
            TorchScript
            always takes any batch.
        opset: the ONNX opset (``onnx`` only; default: the exporter's).
        fuse: :func:`ssld_zoo.deploy.fuse` the model first (in place).
        transform: the preprocessing to record (default: that of the model's weights).
        name: the model's name for the card (default: its architecture).
        source: the weights' provenance for the card (default: :func:`weights_source`).
        precision: ``fp32`` or ``bf16`` (computes in bfloat16; input and outputs stay
            float32). bf16 casts the model's parameters in place.

    Returns the card (also written to ``<out>.json``).
    """
    suffix_for(format)
    if opset is not None and format != "onnx":
        raise ValueError(f"opset applies to the onnx format only, not {format!r}")
    model.eval()  # an exported model is for inference: running statistics, no dropout
    out = Path(out)
    ensure_writable(out)
    arch = _arch_name(model)
    transform = transform or eval_transform_of(model, name or arch)
    if fuse:
        fuse_model(model)
    source = source if source is not None else weights_source(model)
    model = to_precision(model, precision)
    size = transform.input_size
    # torch.export specialises a dimension of size 1: a dynamic batch is traced with 2.
    example = torch.randn(
        2 if dynamic_batch else 1, 3, size, size, generator=torch.Generator().manual_seed(0)
    )
    sample = model(example)
    features = isinstance(sample, (list, tuple))
    outputs = list(sample) if features else [sample]
    output_names = [f"features.{i}" for i in range(len(outputs))] if features else ["logits"]
    writer = {
        "onnx": _write_onnx,
        "torchscript": _write_torchscript,
        "pt2": _write_pt2,
        "aoti": _write_aoti,
    }[format]
    written: dict[str, int | None] = {}

    def write(tmp: Path) -> None:
        written["opset"] = writer(model, example, tmp, dynamic_batch, opset, output_names)

    try:
        atomic_write(out, write)
    except OSError:
        raise  # a full disk or a permission says what it is
    except Exception as e:  # exporters raise many types, with pages of trace: one line here
        raise RuntimeError(
            f"{format} export of {arch or type(model).__name__} failed: "
            f"{type(e).__name__}: {_first_line(e)}"
        ) from e
    batch: int | str = "batch" if dynamic_batch or format == "torchscript" else 1
    num_classes = None if features else int(outputs[0].shape[-1])
    card = {
        "format": format,
        "file": out.name,
        "name": name or arch,
        "arch": arch,
        "input": {
            "name": INPUT_NAME,
            "shape": [batch, 3, size, size],
            "dtype": "float32",
            "layout": "NCHW",
        },
        "outputs": [
            {"name": n, "shape": [batch, *o.shape[1:]]} for n, o in zip(output_names, outputs)
        ],
        "dynamic_batch": batch == "batch",
        "preprocess": _preprocess_dict(transform),
        "num_classes": num_classes,
        "class_names": _class_names(num_classes),
        "features": features,
        "out_indices": list(model.out_indices)
        if features and hasattr(model, "out_indices")
        else None,
        "feature_info": [
            {"channels": f.channels, "reduction": f.reduction} for f in model.feature_info
        ]
        if features
        else None,
        "fused": bool(fuse),
        "precision": precision,
        "opset": written["opset"],
        "source": source,
        "versions": _versions(),
    }
    write_card(out, card)
    return card


def ensure_writable(out: Path) -> None:
    """Fail early, with one line, when ``out`` cannot be written (before a long export)."""
    if out.is_dir():
        raise ValueError(f"cannot write {out}: it is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot write {out}: {e.strerror or e} ({e.filename or out.parent})"
        ) from e
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"cannot write {out}: {out.parent} is not writable")


def _dynamic_batch_shapes() -> tuple[dict[int, Any]]:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def _write_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    dynamic: bool,
    opset: int | None,
    output_names: list[str],
) -> int:
    import onnx

    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        verbose=False,
        input_names=[INPUT_NAME],
        output_names=output_names,
        opset_version=opset,
        dynamic_shapes=_dynamic_batch_shapes() if dynamic else None,
        external_data=False,
    )
    proto = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _write_torchscript(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    dynamic: bool,
    opset: int | None,
    output_names: list[str],
) -> None:
    # Scripted, not frozen: a frozen module keeps its weights as constants on the device it
    # was frozen on. torch.jit.freeze / optimize_for_inference after loading, where it runs.
    torch.jit.save(torch.jit.script(model), str(path))


def _export_program(model: nn.Module, example: torch.Tensor, dynamic: bool):
    """``torch.export`` of ``model`` on ``example``, with a dynamic batch when asked (pt2, AOTI)."""
    return torch.export.export(
        model, (example,), dynamic_shapes=_dynamic_batch_shapes() if dynamic else None
    )


def _write_pt2(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    dynamic: bool,
    opset: int | None,
    output_names: list[str],
) -> None:
    program = _export_program(model, example, dynamic)
    with open(path, "wb") as f:  # a file object: torch.export.save warns on a non-.pt2 name
        torch.export.save(program, f)


def _write_aoti(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    dynamic: bool,
    opset: int | None,
    output_names: list[str],
) -> None:
    program = _export_program(model, example, dynamic)
    with open(path, "wb") as f:  # a file object: a path must end in .pt2
        torch._inductor.aoti_compile_and_package(
            program, package_path=f, inductor_configs=INDUCTOR_OPTIONS
        )


def _arch_name(model: nn.Module) -> str | None:
    # a features_only model wraps the classifier model
    return getattr(model, "arch_name", None) or getattr(
        getattr(model, "model", None), "arch_name", None
    )


def _preprocess_dict(t: EvalTransform) -> dict[str, Any]:
    # the transform's own fields, plus timm's name for the crop ratio
    return {**t.to_dict(), "crop_pct": round(t.input_size / t.resize, 4)}


def transform_of_card(card: dict[str, Any]) -> EvalTransform:
    """The :class:`EvalTransform` a card's ``preprocess`` entry describes."""
    p = {k: v for k, v in card["preprocess"].items() if k != "crop_pct"}
    return EvalTransform.from_dict(p, "card 'preprocess'")


def _class_names(num_classes: int | None) -> list[str] | None:
    if num_classes != 1000:
        return None
    from ssld_zoo.api import class_names

    return class_names()


def _versions() -> dict[str, str]:
    import ssld_zoo

    return {"ssld_zoo": ssld_zoo.__version__, "torch": torch.__version__}


def weights_source(model: nn.Module, weights: str | os.PathLike | None = None) -> dict[str, Any]:
    """Where the weights of ``model`` came from: ``weights`` (a file: its name, path and
    sha256) or the registered weights it was loaded with (name, URL, published sha256);
    all None for a randomly initialised model."""
    card = weight_card_of(model)
    if weights is not None and os.path.isfile(weights):
        path = Path(weights)
        return {
            "weights": card.name if card else path.name,
            "file": str(path.resolve()),
            "url": None,
            "sha256": sha256_of(path),
        }
    if card is not None:
        return {
            "weights": card.name,
            "file": None,
            "url": card.urls[0],
            "sha256": card.sha256 or recorded_sha256(card.file_name),
        }
    return {"weights": None, "file": None, "url": None, "sha256": None}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


# --------------------------------------------------------------------------- card


def write_card(out: str | os.PathLike, card: dict[str, Any]) -> Path:
    """Write ``card`` to ``<out>.json`` atomically; returns its path."""
    path = card_path(out)
    text = json.dumps(card, indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_card(out: str | os.PathLike) -> dict[str, Any]:
    """The card of an exported model file."""
    path = card_path(out)
    if not path.is_file():
        raise FileNotFoundError(f"card {path} of {out} does not exist")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- check


def load_exported(
    path: str | os.PathLike, format: str
) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """A function running the exported file on an NCHW float32 batch, returning its outputs
    as a list of tensors (one for a classifier)."""
    suffix_for(format)
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"exported model {path} does not exist")
    if format == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_onnx(x: torch.Tensor) -> list[torch.Tensor]:
            return [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]

        return run_onnx
    if format == "aoti":
        module = torch._inductor.aoti_load_package(path)
    elif format == "torchscript":
        module = torch.jit.load(path, map_location="cpu").eval()
    else:
        module = torch.export.load(path).module()

    def run_torch(x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return _as_list(module(x))

    return run_torch


def _as_list(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


@dataclass
class CheckResult:
    """The exported file against eager PyTorch on one image through the card's transform.

    ``max_abs_diff`` and ``tolerance`` are those of the worst output (the one closest to, or
    furthest over, its tolerance ``RTOL x max |eager|``); ``top1_agrees`` is None for
    feature maps."""

    image: str
    batch_sizes: list[int]
    worst_output: str
    max_abs_diff: float
    tolerance: float
    top1_agrees: bool | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def check_export(
    path: str | os.PathLike, reference: nn.Module, image, image_label: str | None = None
) -> CheckResult:
    """Run the exported ``path`` and the eager ``reference`` on ``image`` (a PIL image)
    preprocessed by the card's transform, at batch 1 and, for a dynamic batch, at batch 3
    (the image and two flips); compare every output."""
    card = read_card(path)
    x = transform_of_card(card).build()(image).unsqueeze(0)
    batches = [x]
    if card["dynamic_batch"]:
        batches.append(torch.cat([x, x.flip(-1), x.flip(-2)]))
    run = load_exported(path, card["format"])
    rtol = BF16_RTOL if card.get("precision") == "bf16" else RTOL
    names = [o["name"] for o in card["outputs"]]
    worst = (-1.0, "", 0.0, 0.0)  # (diff / tolerance, output, diff, tolerance)
    top1: bool | None = None if card["features"] else True
    for batch in batches:
        want, got = _as_list(reference(batch)), run(batch)
        if len(got) != len(want):
            raise RuntimeError(f"{path}: {len(got)} outputs, eager gives {len(want)}")
        for name, w, g in zip(names, want, got):
            if tuple(g.shape) != tuple(w.shape):
                raise RuntimeError(
                    f"{path}: output {name} has shape {tuple(g.shape)}, eager "
                    f"{tuple(w.shape)} (batch {batch.shape[0]})"
                )
            diff = float((g.float() - w.float()).abs().max())
            tol = rtol * (float(w.abs().max()) or 1.0)
            if diff / tol > worst[0]:
                worst = (diff / tol, name, diff, tol)
            if top1 is not None:
                top1 = top1 and bool((g.argmax(-1) == w.argmax(-1)).all())
    return CheckResult(
        image=image_label or "image",
        batch_sizes=[b.shape[0] for b in batches],
        worst_output=worst[1],
        max_abs_diff=worst[2],
        tolerance=worst[3],
        top1_agrees=top1,
        passed=worst[0] <= 1.0 and (rtol == RTOL or top1 is not False),
    )


def synthetic_image(width: int = 320, height: int = 288):
    """A deterministic RGB test pattern (colour ramps and coarse noise) as a ``PIL.Image``,
    for checking an export when no photo is at hand."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij"
    )
    ramps = torch.stack([xx, yy, (6.0 * xx * yy).sin().abs()])
    noise = torch.rand(3, height // 16 + 1, width // 16 + 1, generator=g)
    noise = noise.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, :height, :width]
    rgb = ((0.6 * ramps + 0.4 * noise).clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(rgb.permute(1, 2, 0).contiguous().numpy())
