"""The data preprocessor of every ssld-zoo training run: uint8 crops to the device, as floats.

Images leave the data workers as uint8 tensors (4x less to copy than floats); this moves them to
the device and scales them to [0, 1] there. Normalisation is each model's own
(:class:`~ssld_zoo.engine.models.ModelInput`): a teacher and a student may use different mean,
std and input size.
"""

from __future__ import annotations

import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.registry import MODELS

__all__ = ["UInt8Preprocessor", "NonFiniteLossError", "resolve_channels_last"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; raised before the optimiser step, so the weights (and
    every checkpoint written so far) stay the last good ones."""


def resolve_channels_last(channels_last: bool | str) -> bool:
    """``'auto'``: on with CUDA (faster convolutions with AMP), off on CPU."""
    if channels_last == "auto":
        return torch.cuda.is_available()
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last={channels_last!r}: expected 'auto', True or False")
    return channels_last


@MODELS.register_module()
class UInt8Preprocessor(BaseDataPreprocessor):
    """Moves a batch to the device and turns uint8 images into floats in [0, 1] there,
    optionally channels-last (``'auto'``: on with CUDA)."""

    def __init__(self, channels_last: bool | str = "auto"):
        super().__init__(non_blocking=True)
        self.channels_last = resolve_channels_last(channels_last)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(dict(data))
        x = data["inputs"]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        data["inputs"] = x
        return data
