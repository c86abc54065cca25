"""Deployment: fast exact inference, bfloat16, int8, and exported model files.

- :func:`optimize` (``ssld_zoo.deploy.optimize(model)``): today's fast in-process path: fuse,
  channels_last, ``torch.compile`` with Inductor's freezing; ``precision="bf16"`` runs it in
  bfloat16 behind a float32 interface (:func:`to_precision`, :func:`bf16_supported`).
- :func:`fuse`: re-parameterise (PP-LCNetV2) and fold every BatchNorm into the convolution
  before it, in place; same outputs to fp32 rounding, fewer layers.
- :func:`export_model`: an AOTInductor package (``aoti``: compiled, runs without the model's
  Python code), ONNX, a torch.export program (pt2) or TorchScript (deprecated) file plus a JSON
  card (``<file>.json``: preprocessing, outputs, class names, source weights, versions);
  :func:`check_export` runs the file against eager PyTorch. ``ssld-zoo export`` does both.
- :mod:`ssld_zoo.deploy.quantize`: int8 by PT2E (torchao's x86 Inductor quantizer):
  :func:`quantize_ptq` calibrated on unlabeled images, the QAT pieces that
  :func:`ssld_zoo.distill.quantize.distill_quantized` trains, and int8 AOTInductor / pt2 / ONNX
  QDQ files (:func:`save_int8`). ``ssld-zoo quantize`` does it from the command line.
"""

from ssld_zoo.deploy.export import (
    FORMATS,
    CheckResult,
    check_export,
    export_model,
    load_exported,
    read_card,
)
from ssld_zoo.deploy.fuse import fold_batchnorm, fuse
from ssld_zoo.deploy.optimize import BFloat16Model, bf16_supported, optimize, to_precision
from ssld_zoo.deploy.quantize import compile_int8, load_int8, quantize_ptq, save_int8

__all__ = [
    "optimize",
    "to_precision",
    "bf16_supported",
    "BFloat16Model",
    "fuse",
    "fold_batchnorm",
    "export_model",
    "check_export",
    "CheckResult",
    "load_exported",
    "read_card",
    "FORMATS",
    "quantize_ptq",
    "compile_int8",
    "save_int8",
    "load_int8",
]
