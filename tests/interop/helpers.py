"""Helpers shared by the interop tests."""

from __future__ import annotations

import torch

import ssld_zoo


def randomised(name: str, seed: int = 0, lab_bias: float = 0.05, **kwargs) -> torch.nn.Module:
    """A random-init zoo model in eval mode whose BatchNorms are not the identity (random
    statistics and affine) and have counted batches, so that a BN mapped to the wrong place,
    or a statistic to the wrong buffer, shows in the output. Learnable affine blocks (PP-HGNetV2
    B0-B3) get scale 0.9 and bias ``lab_bias``, so that a swapped or dropped one shows too.
    ``drop_rate`` (a load keyword) sets the p of PaddleClas's downscale-in-infer head dropout
    (x(1-p) at inference)."""
    torch.manual_seed(seed)
    model = ssld_zoo.load(name, pretrained=False, **kwargs).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            m.num_batches_tracked.fill_(7)
        elif type(m).__name__ == "LearnableAffineBlock":
            m.scale.data.fill_(0.9)
            m.bias.data.fill_(lab_bias)
    return model
