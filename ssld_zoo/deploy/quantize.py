"""int8 through PT2E: post-training quantization, the pieces of quantization-aware training,
and the int8 model's deployment forms.

The quantizer is torchao's ``X86InductorQuantizer`` (``torch.ao.quantization``'s PT2E code
moved to torchao and was removed from torch 2.14): int8 activations (per-tensor, asymmetric),
int8 weights (per-channel, symmetric), patterns that Inductor lowers to oneDNN's int8
kernels (AVX512-VNNI / AMX). The flow is PyTorch's documented one: capture with
``torch.export``, ``prepare_pt2e`` (observers), calibrate on unlabeled images,
``convert_pt2e``; the converted graph then runs

- in-process through ``torch.compile`` with freezing (:func:`compile_int8`),
- as an AOTInductor package or a torch.export program (:func:`save_int8`),
- as ONNX with QuantizeLinear / DequantizeLinear pairs (QDQ) in onnxruntime (:func:`save_int8`).

Label-free quantization-aware distillation, which trains :func:`prepare_qat`'s fake-quantized
copy against the float model, is :func:`ssld_zoo.distill.quantize.distill_quantized`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn

from ssld_zoo.deploy.fuse import fuse
from ssld_zoo.deploy.optimize import INDUCTOR_OPTIONS, FrozenCompiled
from ssld_zoo.weights.fileops import atomic_write

__all__ = [
    "INT8_FORMATS",
    "capture",
    "quantize_ptq",
    "prepare_qat",
    "convert",
    "compile_int8",
    "save_int8",
    "load_int8",
]

INT8_FORMATS = {"aoti": ".int8.aoti.pt2", "pt2": ".int8.pt2", "onnx": ".int8.onnx"}
MAX_BATCH = 4096


def _torchao():
    try:
        from torchao.quantization.pt2e import quantize_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ImportError as e:
        raise ImportError(
            f"int8 quantization needs torchao (pip install 'ssld-zoo[quantize]'): {e}"
        ) from e
    return quantize_pt2e, x86_inductor_quantizer


def _quantizer(is_qat: bool):
    _, x86 = _torchao()
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config(is_qat=is_qat))
    return quantizer


def _batch_dim() -> tuple[dict[int, torch.export.Dim]]:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def capture(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """``model`` as the ``torch.export`` graph PT2E quantizes, with a dynamic batch (the
    ``example`` must have a batch of 2 or more: torch.export specialises a batch of 1)."""
    if example.dim() != 4 or example.shape[0] < 2:
        raise ValueError(
            f"capture needs an NCHW example with a batch of 2 or more, got shape "
            f"{tuple(example.shape)}"
        )
    return torch.export.export(model, (example,), dynamic_shapes=_batch_dim()).module()


@torch.no_grad()
def quantize_ptq(
    model: nn.Module, calibration: Iterable[torch.Tensor], example: torch.Tensor | None = None
) -> torch.fx.GraphModule:
    """Post-training int8 quantization of an eval-mode model (fused in place first), its
    activation ranges observed on the ``calibration`` batches (normalised NCHW float32
    images; no labels). ``example``: the capture input (default: the first batch)."""
    quantize_pt2e, _ = _torchao()
    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise ValueError("quantize_ptq needs at least one calibration batch")
    model.eval()
    fuse(model, first[:1])
    prepared = quantize_pt2e.prepare_pt2e(
        capture(model, first if example is None else example), _quantizer(is_qat=False)
    )
    prepared(first)
    for x in batches:
        prepared(x)
    return quantize_pt2e.convert_pt2e(prepared)


def prepare_qat(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """A fake-quantized copy of an eval-mode ``model`` (fused in place first) for
    quantization-aware training: its observers and fake-quantizers follow the int8 scheme of
    :func:`quantize_ptq`, its weights train. Call :func:`convert` when done."""
    quantize_pt2e, _ = _torchao()
    from torchao.quantization.pt2e import move_exported_model_to_train

    model.eval()
    fuse(model, example[:1])
    prepared = quantize_pt2e.prepare_qat_pt2e(capture(model, example), _quantizer(is_qat=True))
    move_exported_model_to_train(prepared)
    return prepared


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The int8 model of a :func:`prepare_qat` graph (in eval mode)."""
    quantize_pt2e, _ = _torchao()
    from torchao.quantization.pt2e import move_exported_model_to_eval

    move_exported_model_to_eval(prepared)
    return quantize_pt2e.convert_pt2e(prepared)


def compile_int8(quantized: torch.fx.GraphModule) -> nn.Module:
    """The converted model compiled by Inductor with freezing (int8 oneDNN kernels); compiled at
    its first call, which must run under ``torch.no_grad()`` or ``torch.inference_mode()``."""
    return FrozenCompiled(quantized)


@torch.no_grad()
def save_int8(
    quantized: torch.fx.GraphModule, out: str | os.PathLike, format: str, example: torch.Tensor
) -> Path:
    """Write the converted model to ``out`` (atomically) with a dynamic batch:

    - ``aoti``: an AOTInductor package (``torch._inductor.aoti_load_package``; no Python model
      code needed), compiled with freezing;
    - ``pt2``: the torch.export program (``torch.export.load(out).module()``);
    - ``onnx``: ONNX QDQ (``torch.onnx.export(dynamo=True)``), for onnxruntime.
    """
    if format not in INT8_FORMATS:
        raise ValueError(f"int8 format {format!r}: expected one of {', '.join(INT8_FORMATS)}")
    out = Path(out)

    def write(tmp: Path) -> None:
        if format == "onnx":
            torch.onnx.export(
                quantized,
                (example,),
                str(tmp),
                dynamo=True,
                verbose=False,
                input_names=["input"],
                dynamic_shapes=_batch_dim(),
                external_data=False,
            )
            return
        program = torch.export.export(quantized, (example,), dynamic_shapes=_batch_dim())
        with open(tmp, "wb") as f:  # a file object: both writers want a .pt2 name otherwise
            if format == "pt2":
                torch.export.save(program, f)
            else:
                torch._inductor.aoti_compile_and_package(
                    program, package_path=f, inductor_configs=INDUCTOR_OPTIONS
                )

    return atomic_write(out, write)


def load_int8(path: str | os.PathLike, format: str):
    """A callable running a :func:`save_int8` file on an NCHW float32 batch (returns the
    logits as a torch tensor)."""
    if format not in INT8_FORMATS:
        raise ValueError(f"int8 format {format!r}: expected one of {', '.join(INT8_FORMATS)}")
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"int8 model {path} does not exist")
    if format == "aoti":
        return torch._inductor.aoti_load_package(path)
    if format == "pt2":
        return torch.export.load(path).module()
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
