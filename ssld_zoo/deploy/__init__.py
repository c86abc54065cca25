"""Deployment: fast exact inference and exported model files.

- :func:`fuse` (``ssld_zoo.deploy.fuse(model)``): re-parameterise (PP-LCNetV2) and fold every
  BatchNorm into the convolution before it, in place; same outputs to fp32 rounding, fewer
  layers. Combine with ``model.to(memory_format=torch.channels_last)`` for CPU speed.
- :func:`export_model`: ONNX, TorchScript or pt2 (torch.export) file plus a JSON card
  (``<file>.json``: preprocessing, outputs, class names, source weights, versions);
  :func:`check_export` runs the file against eager PyTorch. ``ssld-zoo export`` does both.
"""
from ssld_zoo.deploy.export import (FORMATS, CheckResult, check_export, export_model,
                                    load_exported, read_card)
from ssld_zoo.deploy.fuse import fold_batchnorm, fuse

__all__ = ["fuse", "fold_batchnorm", "export_model", "check_export", "CheckResult",
           "load_exported", "read_card", "FORMATS"]
