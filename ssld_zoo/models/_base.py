"""What every zoo architecture provides: the timm model API, and the feature-pyramid wrapper.

A zoo model names its sub-modules exactly as PaddleClas does, so that a ``.pdparams`` file
maps onto it key for key. A family implements:

* ``forward_stages(x)``: the list of stage outputs, one per ``feature_info`` entry; it runs the
  stages the model holds, so a model pruned by :meth:`Backbone.prune_intermediate_layers`
  runs only those (what the feature pyramid and the MMDetection adapter use);
* ``final_features(stages)``: the final feature map before pooling from the stage outputs
  (``forward_features`` is ``final_features(forward_stages(x))``, timm's meaning); the
  default is the last stage output, a family whose classifier starts with layers applied
  before pooling (MobileNetV2, HRNet, Next-ViT's norm) overrides it;
* ``forward_head(x, pre_logits=False)``: that map -> pooled features (``pre_logits``) or logits
  (:class:`PoolLinearBackbone` and :class:`ConvHeadBackbone` implement the two common heads);
* ``classifier_name``: the final Linear's attribute (default ``fc``), from which
  ``get_classifier()`` / ``reset_classifier(num_classes)`` are implemented here (a family whose
  classifier is not one attribute overrides them);
* ``num_features`` (channels of ``forward_features``, the pooled width), ``head_hidden_size``
  (the width the classifier reads: the hidden head layer's where there is one), ``num_classes``;
* ``head_names``: the attributes that only the classifier uses.

Everything else timm users call (``forward_intermediates``, ``prune_intermediate_layers``,
``set_grad_checkpointing``, ``group_matcher``, ``no_weight_decay``, ``pretrained_cfg``,
``feature_info``) is implemented here once, on top of those.

Graph capture: family code is written so that ``torch.jit.script``, ``torch.fx`` and
``torch.export`` all take it: no Python sets or ``getattr`` by computed name in ``forward``,
and input checks that look at sizes go through :func:`check_input` (``torch._assert`` while a
graph is being captured).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from ssld_zoo.models.layers import DownscaleInInferDropout
from ssld_zoo.registry import FeatureInfo

if TYPE_CHECKING:
    from ssld_zoo.registry import WeightCard

__all__ = [
    "Backbone",
    "ConvHeadBackbone",
    "FeatureInfoList",
    "FlatBlocks",
    "FeaturePyramid",
    "PoolLinearBackbone",
    "adapt_input_conv",
    "check_input",
    "feature_take_indices",
    "new_linear",
]


class FeatureInfoList(list):
    """``feature_info``: a list of :class:`~ssld_zoo.registry.FeatureInfo`, with the accessors
    of timm's ``FeatureInfo`` (``channels()``, ``reduction()``, ``module_name()``,
    ``get_dicts()``)."""

    def _pick(self, attr: str, idx: int | Sequence[int] | None):
        if idx is None:
            return [getattr(f, attr) for f in self]
        if isinstance(idx, int):
            return getattr(self[idx], attr)
        return [getattr(self[i], attr) for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None):
        return self._pick("channels", idx)

    def reduction(self, idx: int | Sequence[int] | None = None):
        return self._pick("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None):
        return self._pick("module", idx)

    def get_dicts(
        self, keys: Sequence[str] | None = None, idx: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        rows = [self[i] for i in idx] if idx is not None else list(self)
        dicts = [f.to_dict() for f in rows]
        return [{k: d[k] for k in keys} for d in dicts] if keys is not None else dicts


def feature_take_indices(
    num_stages: int, indices: int | Sequence[int] | None
) -> tuple[list[int], int]:
    """Stage indices as timm reads them: None = all, an int ``n`` = the last ``n`` stages,
    a sequence = those stages (negative ones count from the end). Returns the sorted,
    non-negative indices and the largest; a bad index raises ``ValueError`` naming the range."""
    if indices is None:
        indices = num_stages
    if isinstance(indices, bool) or not isinstance(indices, (int, Sequence)):
        raise ValueError(f"out_indices must be an int or a sequence of ints, got {indices!r}")
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(
                f"out_indices={indices} (the last {indices} stages) is out of "
                f"range: expected 1..{num_stages}"
            )
        picked = list(range(num_stages - indices, num_stages))
    else:
        picked = []
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not -num_stages <= i < num_stages:
                raise ValueError(
                    f"out_indices {list(indices)}: {i!r} is out of range (stage "
                    f"indices are {-num_stages}..{num_stages - 1})"
                )
            picked.append(i % num_stages)
        if not picked:
            raise ValueError("out_indices is empty: name at least one stage")
        if len(set(picked)) != len(picked):
            raise ValueError(f"out_indices {list(indices)} names a stage twice")
    return picked, max(picked)


def check_input(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` in eager mode when ``ok`` is False.

    Under ``torch.fx`` tracing ``ok`` is a symbolic value and cannot be branched on: use
    :func:`torch._assert` there (TorchScript code calls ``torch._assert`` directly)."""
    if isinstance(ok, torch.fx.Proxy):
        torch._assert(ok, message)
    elif not ok:
        raise ValueError(message)


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first-conv weight trained on RGB, for ``in_chans`` input channels, as timm adapts it:
    1 channel sums the three filters; N channels repeat them and scale by 3/N, so a grey
    image or stacked copies give the activations of the RGB model."""
    out_ch, rgb, kh, kw = weight.shape
    if in_chans == rgb:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_chans / rgb)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (rgb / in_chans)


class FlatBlocks(nn.Module):
    """A module whose blocks PaddleClas registers as flat attributes (``bb_0_0``,
    ``_ghostbottleneck_3``...) rather than in a list, so that the keys match PaddleClas's."""

    def _set_flat_blocks(self, names: Sequence[str]) -> None:
        """Declare the flat blocks, in execution order. ``self._flat_blocks`` then lists them
        (the ones not pruned) for ``forward_stages`` to loop over; it is a plain attribute,
        not a registered sub-module, so the blocks keep their PaddleClas keys only."""
        self.__dict__["_flat_block_names"] = list(names)
        self.__dict__["_flat_blocks"] = nn.ModuleList(
            [m for m in (self._modules[n] for n in names) if m is not None]
        )

    def _run_flat_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the flat blocks in order; returns the last output and the outputs of the
        blocks whose positions are in ``self._stage_ends`` (what ``forward_stages`` returns)."""
        outs: list[torch.Tensor] = []
        for i, block in enumerate(self._flat_blocks):
            x = block(x)
            if i in self._stage_ends:
                outs.append(x)
        return x, outs

    def __prepare_scriptable__(self) -> nn.Module:
        # TorchScript compiles attributes that are registered modules only: script a shallow
        # copy in which the flat blocks are registered once, as the list forward_stages reads.
        if "_flat_block_names" not in self.__dict__:
            return self
        import copy

        twin = copy.copy(self)
        names = set(self._flat_block_names)
        twin._modules = {k: v for k, v in self._modules.items() if k not in names}
        # A new list: TorchScript replaces the entries of the lists it is given.
        blocks = nn.ModuleList(list(twin.__dict__.pop("_flat_blocks")))
        twin._flat_blocks = blocks
        return twin


class Backbone(FlatBlocks):
    """Base class of the zoo's classification models (the timm model API)."""

    # The attributes only the classifier uses (no class-level annotations here: TorchScript
    # would read them).
    head_names = ()
    # The final Linear's attribute (PaddleClas's name); it reads ``head_hidden_size`` features.
    classifier_name = "fc"
    # True where the architecture only runs at its native input size.
    fixed_input_size = False
    # Python-only attributes TorchScript must not try to compile.
    __jit_unused_properties__ = ["feature_info", "default_cfg"]
    if TYPE_CHECKING:  # what ssld_zoo.load sets, declared for the type checker only
        arch_name: str
        weight_card: WeightCard | None
        pretrained_cfg: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.pretrained_cfg: dict[str, Any] = {}
        self.weight_card = None

    # --- what the family implements ---------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_features(self.forward_stages(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer with a freshly initialised one for ``num_classes``
        (0: none, ``forward`` then returns the pooled features). Hidden head layers (a 1x1
        head conv, pretrained) are kept, as timm does."""
        self.num_classes = num_classes
        setattr(
            self, self.classifier_name, new_linear(nn.Linear(self.head_hidden_size, 1), num_classes)
        )

    # --- shared ---------------------------------------------------------------------------
    @property
    def feature_info(self) -> FeatureInfoList:
        """One :class:`~ssld_zoo.registry.FeatureInfo` per stage (channels, reduction,
        module), with timm's accessors (``.channels()``, ``.reduction()``...)."""
        return self.__dict__["_feature_info"]

    @feature_info.setter
    def feature_info(self, value: Iterable[FeatureInfo]) -> None:
        self.__dict__["_feature_info"] = FeatureInfoList(value)

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's old name of :attr:`pretrained_cfg`."""
        return self.pretrained_cfg

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them
        (less memory, about a third more compute). Applies to every stage-level block."""
        self.grad_checkpointing = enable
        for block in self._checkpoint_units():
            if enable and "forward" not in block.__dict__:
                forward = type(block).forward
                block.forward = _Checkpointed(block, forward)
            elif not enable and "forward" in block.__dict__:
                del block.forward

    def _checkpoint_units(self) -> list[nn.Module]:
        # The blocks of the body: items of each body container, other body children as is.
        units = []
        for name, child in self.named_children():
            if name in self.head_names:
                continue
            items = list(child) if _is_container(child) else [child]
            units += [m for m in items if any(True for _ in m.parameters())]
        return units

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups (``{"stem": regex, "blocks": [(regex, (i,)), ...]}``, per
        stage if ``coarse`` else per block; the head is timm's last group), derived from
        ``feature_info`` by :mod:`ssld_zoo.models._groups`."""
        from ssld_zoo.models._groups import matcher_from_units, stage_units

        stem, stages = stage_units(self)
        return matcher_from_units(stem, stages, coarse)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Names timm must not decay beyond the 1-d tensors it skips: none (all conv/linear)."""
        return set()

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ):
        """timm's ``forward_intermediates``: the stage outputs at ``indices`` (None: all; an
        int: the last n) and, unless ``intermediates_only``, the final feature map, as
        ``(final, intermediates)``. ``stop_early`` is accepted for timm's signature; to run
        only the stages up to the last index, prune the model
        (:meth:`prune_intermediate_layers`), as ``features_only`` does."""
        picked, _ = feature_take_indices(len(self.feature_info), indices)
        feats = self.forward_stages(x)
        inter = [feats[i] for i in picked]
        if intermediates_only:
            return inter
        return self.final_features(feats), inter

    # Stage loops that several families share (TorchScript compiles one for a family only
    # when its forward_stages calls it, so the attributes need exist only there).
    def _run_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run ``self.blocks`` (one flat ``Sequential``); return the outputs of the blocks at
        the positions in ``self._stage_ends``."""
        outs: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._stage_ends:
                outs.append(x)
        return outs

    def _run_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run ``self.stages`` (a ``ModuleList`` of stages); return every stage's output."""
        outs: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def final_features(self, stages: list[torch.Tensor]) -> torch.Tensor:
        """``forward_features`` from stage outputs already computed (the last one, or what
        the family's pre-pool head layers make of them)."""
        return stages[-1]

    @torch.jit.ignore
    def prune_intermediate_layers(
        self, indices: int | Sequence[int] | None = None, prune_head: bool = True
    ) -> list[int]:
        """Delete every stage after the last of ``indices`` (and with ``prune_head`` the
        classifier), so that the model holds and runs only what those stages need and
        every parameter it keeps gets a gradient. Returns the kept indices."""
        picked, last = feature_take_indices(len(self.feature_info), indices)
        self._truncate(picked)
        self.feature_info = list(self.feature_info)[: last + 1]
        if prune_head:
            for name in self.head_names:
                module = getattr(self, name)
                if module is not None:
                    setattr(self, name, _without_parameters(module))
            self.num_classes = 0
        return picked

    def _truncate(self, picked: list[int]) -> None:
        """Remove what only stages not in ``picked`` need: what runs after the last of them
        (registration order = execution order in every zoo family), i.e. later items of the
        container that stage ends in, and later top-level modules with parameters (set to
        None: ``forward_stages`` skips a None module). A family whose stages are not one
        sequence overrides this."""
        last = max(picked)
        if last == len(self.feature_info) - 1:
            return
        path = self.feature_info[last].module.split(".")
        names = list(self._modules)
        if len(path) > 1:  # the stage ends inside a container: keep its items up to it
            del self._modules[path[0]][int(path[1]) + 1 :]
        for name in names[names.index(path[0]) + 1 :]:
            module = self._modules[name]
            if name not in self.head_names and module is not None and _has_parameters(module):
                setattr(self, name, None)
        if "_flat_block_names" in self.__dict__:
            self._set_flat_blocks(self._flat_block_names)


class PoolLinearBackbone(Backbone):
    """A family whose classifier is global average pooling (``avg_pool``) and ``fc``."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avg_pool(x), 1)
        return x if pre_logits else self.fc(x)


class ConvHeadBackbone(Backbone):
    """A family whose classifier is PaddleClas's conv head (PP-LCNet, PP-LCNetV2, PP-HGNet,
    PP-HGNetV2): global average pooling -> [1x1 conv to ``class_expand`` (no BN, no bias) ->
    activation -> [learnable affine] -> downscale-in-infer dropout] -> ``fc``."""

    def _build_head(
        self,
        in_ch: int,
        num_classes: int,
        use_last_conv: bool,
        class_expand: int,
        act: nn.Module,
        drop_rate: float,
        lab: nn.Module | None = None,
    ) -> None:
        """Register ``avg_pool``, ``last_conv``, ``act``, [``lab``], ``dropout``, ``fc``
        (PaddleClas's names and order) and set ``num_features``/``head_hidden_size``."""
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.last_conv = self.act = self.lab = self.dropout = None
        head_in = in_ch
        if use_last_conv:
            self.last_conv = nn.Conv2d(in_ch, class_expand, 1, bias=False)
            self.act = act
            self.lab = lab
            self.dropout = DownscaleInInferDropout(drop_rate)
            head_in = class_expand
        self.num_features = in_ch
        self.head_hidden_size = head_in
        self.fc = nn.Linear(head_in, num_classes) if num_classes else nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avg_pool(x)
        if self.last_conv is not None:
            x = self.act(self.last_conv(x))
            if self.lab is not None:
                x = self.lab(x)
            x = self.dropout(x)
        x = torch.flatten(x, 1)
        return x if pre_logits else self.fc(x)


def _is_container(module: nn.Module) -> bool:
    # A plain list of layers; not a layer that is a Sequential (layers.ConvBNAct).
    return type(module) in (nn.Sequential, nn.ModuleList)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _without_parameters(module: nn.Module) -> nn.Module:
    """``module`` with every layer that holds parameters replaced by ``nn.Identity`` and every
    list of layers emptied: a pruned classifier keeps a forward that TorchScript can compile
    (nothing calls it) but holds no parameter that would never get a gradient."""
    if _is_container(module):
        return type(module)()
    if not _has_parameters(module):
        return module
    children = list(module.named_children())
    if not children:
        return nn.Identity()
    for name, child in children:
        setattr(module, name, _without_parameters(child))
    return module


class _Checkpointed:
    """A block's forward that recomputes its activations in backward
    (``set_grad_checkpointing``)."""

    def __init__(self, block: nn.Module, forward):
        self.block, self.forward = block, forward

    def __call__(self, *args):
        if torch.is_grad_enabled() and self.block.training:
            return checkpoint(self.forward, self.block, *args, use_reentrant=False)
        return self.forward(self.block, *args)


def new_linear(old: nn.Linear | nn.Module, num_classes: int) -> nn.Module:
    """A fresh classifier with the input width of ``old`` (Identity when num_classes is 0)."""
    if num_classes == 0:
        return nn.Identity()
    layer = nn.Linear(old.in_features, num_classes)
    nn.init.normal_(layer.weight, std=0.01)
    nn.init.zeros_(layer.bias)
    return layer


class FeaturePyramid(nn.Module):
    """A zoo backbone without its classifier and without the stages after the last one it
    returns; its forward gives the stage outputs in ``out_indices`` (timm's
    ``features_only``). ``feature_info`` lists the returned stages in order."""

    def __init__(self, model: Backbone, out_indices: int | Sequence[int] | None = None):
        super().__init__()
        try:
            picked = model.prune_intermediate_layers(out_indices, prune_head=True)
        except ValueError as e:
            stages = ", ".join(
                f"{i}: {f.module} ({f.channels} ch, /{f.reduction})"
                for i, f in enumerate(model.feature_info)
            )
            raise ValueError(
                f"{e} ({type(model).__name__} has {len(model.feature_info)} stages: {stages})"
            ) from None
        self.out_indices = tuple(picked)
        self.model = model
        self.feature_info = FeatureInfoList(model.feature_info[i] for i in picked)
        self.pretrained_cfg = model.pretrained_cfg
        self.weight_card = model.weight_card

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.model.forward_stages(x)
        return [feats[i] for i in self.out_indices]
