"""The in-process fast path: fused, channels_last, optionally bfloat16, compiled by Inductor.

TorchScript's ``torch.jit.freeze`` / ``optimize_for_inference`` recipe is deprecated in torch
2.14 (each call warns "switch to torch.compile or torch.export"); its replacement is
``torch.compile`` with Inductor's *freezing* (weights become constants, convolutions run as
pre-packed oneDNN kernels), which is what :func:`optimize` applies to the fused model.

>>> fast = optimize(ssld_zoo.load("pplcnet_x1_0_ssld"))                # doctest: +SKIP
>>> fast16 = optimize(ssld_zoo.load("pplcnet_x1_0_ssld"), precision="bf16")  # doctest: +SKIP

bfloat16 (``precision="bf16"``) keeps float32's range with 8 bits of mantissa: about 3
significant digits, enough for the top-1 of every model measured (``benchmarks/
int8_accuracy.py``). It is fast on CPUs with AVX512-BF16 or AMX (:func:`bf16_supported`)
and on GPUs from Ampere on; elsewhere it runs, emulated and slow.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ssld_zoo.deploy.fuse import fuse

__all__ = [
    "PRECISIONS",
    "BFloat16Model",
    "FrozenCompiled",
    "to_precision",
    "bf16_supported",
    "optimize",
    "INDUCTOR_OPTIONS",
]

PRECISIONS = ("fp32", "bf16")
# Freezing: parameters become constants, so Inductor folds them and pre-packs the convolution
# weights for oneDNN; only valid for inference (no gradients), which is all this is for.
INDUCTOR_OPTIONS = {"freezing": True}


class BFloat16Model(nn.Module):
    """``model`` cast to bfloat16 behind a float32 interface: the input is cast on the way in
    and every output back to float32 on the way out, so callers and exported files keep the
    float32 contract of the card."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> Any:
        out = self.model(x.to(torch.bfloat16))
        if isinstance(out, (list, tuple)):
            return [o.float() for o in out]
        return out.float()


class FrozenCompiled(nn.Module):
    """``torch.compile(model)`` compiled with :data:`INDUCTOR_OPTIONS` (freezing).

    Inductor reads ``freezing`` from its global config when a graph compiles, which is at a
    call (the first, and each recompilation for a new shape), and ``torch.compile``'s
    ``options`` do not reach it in time: int8 graphs then fail to compile (their weight
    pre-packing is only valid frozen). So the setting is switched on around every call, and
    the caller's global config is left alone."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.compiled = torch.compile(model)

    def forward(self, x: torch.Tensor) -> Any:
        with torch._inductor.config.patch(INDUCTOR_OPTIONS):
            return self.compiled(x)


def to_precision(model: nn.Module, precision: str) -> nn.Module:
    """``model`` itself for ``fp32``, wrapped in :class:`BFloat16Model` (its parameters cast
    in place) for ``bf16``; another value raises ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return model if precision == "fp32" else BFloat16Model(model)


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX, as oneDNN
    reports it; CUDA: compute capability 8.0 or later)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def optimize(
    model: nn.Module,
    *,
    precision: str = "fp32",
    channels_last: bool = True,
    compile: bool = True,
    example: torch.Tensor | None = None,
) -> nn.Module:
    """The fastest in-process form of an eval-mode zoo model; ``model`` is changed in place.

    Fuses it (:func:`ssld_zoo.deploy.fuse`: re-parameterisation, BatchNorm folding), moves it
    to channels_last, casts it to ``precision`` and wraps it in ``torch.compile`` with
    :data:`INDUCTOR_OPTIONS` (compiled at the first call, for that input shape; call it under
    ``torch.inference_mode()``). ``compile=False`` returns the eager fused model.

    Args:
        model: a zoo classifier or ``features_only`` model.
        precision: ``fp32`` (same outputs as eager to float32 rounding) or ``bf16``.
        channels_last: run in channels_last memory format (faster on CPU for convolutions).
        compile: compile with Inductor.
        example: an input for :func:`ssld_zoo.deploy.fuse` (default: one random image).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    model.eval()
    fuse(model, example)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    fast = to_precision(model, precision)
    return FrozenCompiled(fast) if compile else fast
