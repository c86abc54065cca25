"""Zoo backbones in MMDetection 3.x / MMSegmentation 1.x configs.

Importing this module registers, in mmengine's *root* registries (so that mmdet's and mmseg's
child registries find them too):

* ``SSLDBackbone`` (MODELS): any zoo model as a multi-scale backbone;
* ``SSLDStageLrConstructor`` (OPTIM_WRAPPER_CONSTRUCTORS): mmengine's default optimizer
  constructor, except that an ``SSLDBackbone``'s parameters are matched against
  ``paramwise_cfg.custom_keys`` under stage names (``backbone.stem``, ``backbone.stages.0``
  ...) instead of the zoo's flat module names, so PaddleDetection's per-stage lr multipliers
  are four custom keys.

In a config::

    custom_imports = dict(imports=['ssld_zoo.adapters.mmlab'], allow_failed_imports=False)
    model = dict(backbone=dict(_delete_=True, type='SSLDBackbone', model='resnet50_vd',
                               weights='ssld', out_indices=(0, 1, 2, 3), frozen_stages=0))
    optim_wrapper = dict(constructor='SSLDStageLrConstructor', paramwise_cfg=dict(custom_keys={
        'backbone.stages.0': dict(lr_mult=0.05), ...}))
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

import ssld_zoo
from ssld_zoo.adapters.resolve import resolve_weights
from ssld_zoo.adapters.stages import StageLayout, dilate_, stage_layout
from ssld_zoo.registry import FeatureInfo, get_arch

__all__ = ["SSLDBackbone", "SSLDStageLrConstructor", "resolve_weights"]


@MODELS.register_module()
class SSLDBackbone(BaseModule):
    """A zoo backbone that returns a tuple of stage feature maps (MMDetection/MMSegmentation).

    Args:
        model: zoo architecture or weight name (``'resnet50_vd'``, ``'mobilenetv3_large_x1_0'``).
        weights: ``'ssld'`` (default: the SSLD weights of that architecture), a registered weight
            name (``'resnet50_vd'`` = PaddleClas's baseline weights), a weights file, or None
            (random init; e.g. when ``init_cfg`` or a checkpoint provides the weights). Loaded by
            :meth:`init_weights`, as OpenMMLab backbones do, so building a model for testing
            from a checkpoint downloads nothing.
        out_indices: which stages to return (0-based, as ``feature_info`` lists them).
        frozen_stages: -1 trains everything; 0 freezes the stem; ``k`` the stem and stages
            ``0..k-1`` (MMDetection's ResNet convention). Frozen parts get no gradient and
            stay in eval mode.
        norm_eval: keep every BatchNorm in eval mode during training (frozen statistics).
        output_stride: 8 or 16 turns the strides of deeper stages into dilation (segmentation);
            None keeps the backbone's own strides.
        init_cfg: mmengine init config, applied after the zoo weights; a ``Pretrained`` init_cfg
            replaces them.
        **kwargs: passed to the architecture's constructor.
    """

    def __init__(
        self,
        model: str,
        weights: str | os.PathLike | None = "ssld",
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        output_stride: int | None = None,
        init_cfg: dict | list | None = None,
        **kwargs: Any,
    ):
        super().__init__(init_cfg=init_cfg)
        try:
            arch = get_arch(model).name
        except KeyError as e:  # a ValueError shows its text unquoted through mmengine's build
            raise ValueError(e.args[0]) from None
        self.model_name = model
        self.weights = resolve_weights(model, weights)
        body = ssld_zoo.load(
            arch, pretrained=False, features_only=True, out_indices=out_indices, **kwargs
        )
        net = body.model
        all_info: list[FeatureInfo] = list(net.feature_info)
        if output_stride is not None:
            all_info = dilate_(net, int(output_stride), all_info)
            body.feature_info = [all_info[i] for i in body.out_indices]
        self.body = body
        self.layout: StageLayout | None
        try:
            self.layout = stage_layout(net, net.feature_info)
        except ValueError as e:  # e.g. HRNet: parallel branches, not a sequence of stages
            self.layout, why = None, str(e)
            if frozen_stages >= 0:
                raise ValueError(
                    f"frozen_stages={frozen_stages} needs stages in sequence: {why}"
                ) from None
        n = len(self.layout.stages) if self.layout is not None else 0
        if self.layout is not None and not -1 <= frozen_stages <= n:
            raise ValueError(
                f"frozen_stages={frozen_stages}: expected -1 (none), 0 (stem) .. "
                f"{n} (stem and all {n} stages)"
            )
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.output_stride = output_stride
        self.out_indices = body.out_indices
        self._freeze()

    # --- structure -------------------------------------------------------------------------
    @property
    def feature_info(self) -> list[FeatureInfo]:
        """Channels and stride of each returned map (in ``out_indices`` order)."""
        return list(self.body.feature_info)

    @property
    def out_channels(self) -> list[int]:
        return [f.channels for f in self.body.feature_info]

    def stage_of(self, param_name: str) -> str:
        """``'stem'``, ``'stages.<i>'`` or ``'head'`` for one of this module's parameter names."""
        prefix = "body.model."
        if self.layout is None:
            raise ValueError(f"{self.model_name}: its outputs are not a sequence of stages")
        if not param_name.startswith(prefix):
            raise KeyError(f"{param_name!r} is not a parameter of the zoo backbone")
        return self.layout.group_of(param_name[len(prefix) :])

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0 or self.layout is None:
            return []
        names = list(self.layout.stem)
        for stage in self.layout.stages[: self.frozen_stages]:
            names += stage
        return [self.body.model.get_submodule(n) for n in names]

    # --- training behaviour ---------------------------------------------------------------
    def _freeze(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> "SSLDBackbone":
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def init_weights(self) -> None:
        """Load the zoo weights (unless a ``Pretrained`` init_cfg replaces them), then apply
        ``init_cfg``."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained_cfg = any(isinstance(c, dict) and c.get("type") == "Pretrained" for c in cfgs)
        if self.weights is not None and not pretrained_cfg:
            from ssld_zoo.api import pretrained_cfg as timm_cfg
            from ssld_zoo.weights.source import load_weights, reference_model

            arch = get_arch(self.model_name).name
            loaded = load_weights(self.weights, arch)
            # The same tensors whatever the dilation; the stages after the last returned one
            # and the head are not held (features_only), so their keys are left over.
            missing, _ = self.body.model.load_state_dict(loaded.state, strict=False)
            bad = [k for k in missing if not k.endswith("num_batches_tracked")]
            if bad:
                raise RuntimeError(f"weights {self.weights!r} left {bad[:5]} unset")
            self.pretrained_cfg = timm_cfg(reference_model(arch), loaded.card)
            self.weight_card = loaded.card
        super().init_weights()
        self._freeze()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.body(x))


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SSLDStageLrConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, with an :class:`SSLDBackbone`'s parameters named by stage.

    Inside an ``SSLDBackbone`` at ``<prefix>``, parameter ``body.model.blocks.4.conv0.conv.weight``
    is matched against ``custom_keys`` as ``<prefix>.stages.1.blocks.4.conv0.conv.weight`` (stem
    parameters as ``<prefix>.stem.<name>``), so ``'backbone.stages.1'`` sets stage 1's
    ``lr_mult``/``decay_mult`` whatever the family's module names. Everything else (norm and
    bias decay, dwconv, frozen parameters) behaves as in mmengine's default.
    """

    def add_params(
        self,
        params: list[dict],
        module: nn.Module,
        prefix: str = "",
        is_dcn_module: int | float | None = None,
    ) -> None:
        if not isinstance(module, SSLDBackbone) or module.layout is None:
            # (A backbone without sequential stages keeps its own names.)
            super().add_params(params, module, prefix, is_dcn_module)
            return
        net = module.body.model
        base = f"{prefix}." if prefix else ""
        for group, leaves in module.layout.groups():
            for leaf in leaves:
                # A leaf has no children: the default handles its own params (norm/bias rules).
                super().add_params(
                    params,
                    net.get_submodule(leaf),
                    prefix=f"{base}{group}.{leaf}",
                    is_dcn_module=is_dcn_module,
                )
        # Parameters held directly by containers (none in zoo families, but never drop one).
        leaf_params = {
            id(p)
            for g in module.layout.groups()
            for n in g[1]
            for p in net.get_submodule(n).parameters()
        }
        rest = [(n, p) for n, p in net.named_parameters() if id(p) not in leaf_params]
        if rest:
            raise ValueError(
                f"SSLDStageLrConstructor: parameters {[n for n, _ in rest][:5]} "
                f"belong to no leaf module"
            )
