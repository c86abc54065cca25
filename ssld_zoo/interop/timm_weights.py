"""Zoo weights as timm state dicts, for the architectures timm implements *exactly*.

"Exactly" means: with the tensors produced here, ``timm.create_model(timm_name,
num_classes=model.num_classes)`` loads them with ``strict=True`` and computes the function our
model computes, in eval mode and in training mode (BatchNorm on batch statistics) alike. A
near-twin that would need BatchNorm folded, a layer added, or an activation changed is not an
equivalent and is refused (:data:`NOT_EQUIVALENT` says why, per architecture).

How the keys are mapped: timm's model is built on the meta device (shapes only, nothing
downloaded) and its tensors are matched to ours *in order*, position by position, after the
per-family adjustments of :class:`_Rules`. Every position must agree in shape and in the tensor's
own name (``weight``, ``bias``, ``running_mean``...), and the counts must be equal; the first
disagreement raises a ``ValueError`` naming the architecture, both keys and both shapes. Order
alone is not a proof, so every family is also checked by output (``tests/interop``, and the CLI
runs :func:`check_timm_state_dict` before it writes a file).

Exact re-parametrisations that hold in training too are applied where needed:

* a layer of ours without bias where timm's has one gets a zero bias;
* PaddleClas's ``downscale_in_infer`` head dropout multiplies by ``1 - p`` at inference and does
  not rescale in training, timm's dropout rescales by ``1 / (1 - p)`` in training and is the
  identity at inference: ``1 - p`` moves into the classifier weight, which is then exact in
  both modes;
* BatchNorm's ``num_batches_tracked`` is taken from our BatchNorm (0 for converted Paddle weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn

from ssld_zoo.interop._core import Converted, Format, register_format, save_safetensors

__all__ = [
    "TIMM_EQUIVALENTS",
    "NOT_EQUIVALENT",
    "timm_equivalent",
    "to_timm_state_dict",
    "check_timm_state_dict",
    "TimmFormat",
]


@dataclass(frozen=True)
class _Rules:
    """What a family's mapping needs beyond renaming by order.

    ``drop``: our keys (regex, full match) that timm has no tensor for and that our forward
    does not use. ``zero``: timm keys (regex) of biases our layers lack, filled with zeros.
    """

    drop: str = ""
    zero: str = ""


# family -> (our architecture -> timm model, mapping rules)
_FAMILIES: dict[str, tuple[dict[str, str], _Rules]] = {
    "resnet_vd": ({f"resnet{d}_vd": f"resnet{d}d" for d in (50, 101, 152)}, _Rules()),
    "pp_hgnet": ({f"pphgnet_{s}": f"hgnet_{s}" for s in ("tiny", "small", "base")}, _Rules()),
    "pp_hgnet_v2": ({f"pphgnetv2_b{i}": f"hgnetv2_b{i}" for i in range(7)}, _Rules()),
    # timm's head conv has a bias, PaddleClas's has none.
    "pp_lcnet": (
        {
            f"pplcnet_x{w}": f"lcnet_{t}"
            for w, t in (
                ("0_35", "035"),
                ("0_5", "050"),
                ("0_75", "075"),
                ("1_0", "100"),
                ("1_5", "150"),
            )
        },
        _Rules(zero=r"conv_head\.bias"),
    ),
    # Our stage-3/4 blocks also hold the fused re-parameterised depthwise conv (``dw_conv``,
    # unused by forward, kept because PaddleClas's files have it); timm computes from the
    # branches, as our forward does.
    "pp_lcnet_v2": (
        {f"pplcnetv2_{s}": f"lcnetv2_{s}" for s in ("small", "base", "large")},
        _Rules(drop=r"stages\.\d+\.\d+\.dw_conv\.(weight|bias)"),
    ),
    "mobilenet_v1": ({"mobilenetv1": "mobilenetv1_100"}, _Rules()),
    # timm's hrnet_w* give the head's downsampling and final 1x1 convs a bias; PaddleClas's
    # convs have none (timm's hrnet_w18_ssld / hrnet_w48_ssld variants drop them too, but only
    # those two widths exist, so every width maps to the plain name with zero biases).
    "hrnet": (
        {f"hrnet_w{w}_c": f"hrnet_w{w}" for w in (18, 30, 32, 40, 44, 48, 64)},
        _Rules(zero=r"(downsamp_modules\.\d+|final_layer)\.0\.bias"),
    ),
    "resnext_wsl": (
        {f"resnext101_32x{w}d_wsl": f"resnext101_32x{w}d" for w in (8, 16, 32)},
        _Rules(),
    ),
    # The _224 and _384 architectures are the same network (only weights and transform differ).
    "nextvit": (
        {
            f"nextvit_{s}_{r}": f"nextvit_{s}"
            for s in ("small", "base", "large")
            for r in (224, 384)
        },
        _Rules(),
    ),
}

#: Our architecture name -> the timm model name of the same network (see the module docstring
#: for what "same" means). ``tests/interop`` checks every entry's tensors against timm's and one
#: architecture per family by output.
TIMM_EQUIVALENTS: dict[str, str] = {
    a: t for archs, _ in _FAMILIES.values() for a, t in archs.items()
}

_MNV3 = (
    "PaddleClas's first block has a 1x1 expansion conv (timm's is depthwise-separable "
    "without one), its squeeze-excite reduces to a plain floor of C/4 (timm: rounded to 8) "
    "and gates with slope 0.2 (timm: 1/6)"
)
_MNV2 = (
    "PaddleClas's first block has a 1x1 expansion conv + BN + ReLU6 (t=1) that timm's "
    "depthwise-separable first block lacks"
)
_GHOST = (
    "PaddleClas's head conv is conv-BN-ReLU (timm's: conv with bias, no BN: equal in eval "
    "mode only after folding BN), and its squeeze-excite gates with clip(0, 1) over "
    "C // 4 channels (timm: hard sigmoid over C/4 rounded to 4)"
)
_R2N = (
    "PaddleClas's stride-2 blocks average-pool the last split excluding padding and stage 1's "
    "first block runs its splits hierarchically; timm's res2net50d/101d include padding and "
    "run that block's splits independently (outputs differ by a few percent)"
)

#: Architectures with a timm near-twin that is *not* the same network, and why.
NOT_EQUIVALENT: dict[str, str] = {
    **{
        f"resnet{d}_vd": (
            f"PaddleClas's first block has a 1x1 conv-BN projection shortcut where "
            f"timm's resnet{d}d has the identity"
        )
        for d in (18, 34)
    },
    "resnet200_vd": "PaddleClas stacks 3, 12, 48, 3 blocks, timm's resnet200d 3, 24, 36, 3",
    **{
        f"mobilenetv1_x{w}": "timm registers MobileNetV1 at widths 1.0 and 1.25 only"
        for w in ("0_25", "0_5", "0_75")
    },
    **{f"pplcnet_x{w}": "timm registers no LCNet of this width" for w in ("0_25", "2_0", "2_5")},
    **{f"mobilenetv2{s}": _MNV2 for s in ("", "_x0_25", "_x0_5", "_x0_75", "_x1_5", "_x2_0")},
    **{
        f"mobilenetv3_{k}_x{w}": _MNV3
        for k in ("large", "small")
        for w in ("0_35", "0_5", "0_75", "1_0", "1_25")
    },
    **{f"ghostnet_x{w}": _GHOST for w in ("0_5", "1_0", "1_3")},
    **{f"res2net{d}_vd_26w_4s": _R2N for d in (50, 101, 200)},
    "se_hrnet_w64_c": "timm has no SE-HRNet",
    # (timm's deprecated alias ig_resnext101_32x48d resolves to resnext101_32x8d: not it either)
    "resnext101_32x48d_wsl": "timm registers ResNeXt-101 32x8d/16d/32d, not 32x48d",
}

_RULES: dict[str, _Rules] = {a: rules for archs, rules in _FAMILIES.values() for a in archs}


def _supported() -> str:
    return ", ".join(sorted(TIMM_EQUIVALENTS))


def _timm():
    try:
        import timm
    except ImportError as e:  # pragma: no cover - timm is a test dependency here
        raise ImportError("converting to timm needs timm: pip install timm") from e
    return timm


def timm_equivalent(name: str) -> str:
    """The timm model name of the network behind a zoo model or weight name.

    Raises ``KeyError`` for an unknown name and ``ValueError`` (saying why, and listing the
    supported architectures) when timm has no exact equivalent."""
    from ssld_zoo.registry import get_arch

    arch = get_arch(name).name
    if arch not in TIMM_EQUIVALENTS:
        raise _unsupported(arch)
    return TIMM_EQUIVALENTS[arch]


def _resolve(model_or_name: Union[str, nn.Module], weights) -> tuple[nn.Module, str]:
    """(the model, its architecture name)."""
    if isinstance(model_or_name, str):
        import ssld_zoo
        from ssld_zoo.registry import get_arch

        timm_equivalent(model_or_name)  # refuse before loading (or downloading) anything
        arch = get_arch(model_or_name).name
        # weights=None: the name's published weights.
        model = (
            ssld_zoo.load(model_or_name)
            if weights is None
            else ssld_zoo.load(model_or_name, weights=weights)
        )
        return model, arch
    if weights is not None:
        raise ValueError(
            "weights= goes with an architecture name, not with a model "
            "(load the weights into the model first)"
        )
    return model_or_name, _arch_of(model_or_name)


def _unsupported(arch: str) -> ValueError:
    why = NOT_EQUIVALENT.get(arch, "timm has no implementation of it")
    return ValueError(f"{arch!r} has no exact timm equivalent ({why}). Supported: {_supported()}")


def _signature(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def _arch_of(model: nn.Module) -> str:
    """The architecture of a zoo model: ``model.arch_name`` (set by ``ssld_zoo.load``), else the
    architecture of its family whose tensors it holds (a model built by a builder directly)."""
    from ssld_zoo.registry import get_arch, list_architectures

    arch = getattr(model, "arch_name", None)
    if arch is None:
        family = type(model).__module__.rsplit(".", 1)[-1]
        sig = _signature(model)
        num_classes = getattr(model, "num_classes", 1000)
        for name in list_architectures():
            if name not in TIMM_EQUIVALENTS or get_arch(name).family != family:
                continue
            try:
                with torch.device("meta"):
                    candidate = get_arch(name).builder(num_classes=num_classes)
            except TypeError:
                continue
            if _signature(candidate) == sig:
                arch = name
                break
        else:
            raise ValueError(
                f"cannot tell which architecture this {type(model).__name__} is: "
                f"pass its name instead. Supported: {_supported()}"
            )
    if arch not in TIMM_EQUIVALENTS:
        raise _unsupported(arch)
    return arch


def _is_nbt(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _head_keep(model: nn.Module, arch: str, num_classes: int) -> float:
    """The factor of PaddleClas's ``downscale_in_infer`` head dropout at inference (1 - p), or 1.

    The zoo's families give that dropout the class name ``DownscaleInInferDropout`` and place it
    right before the classifier."""
    ps = [
        float(m.p)
        for m in model.modules()
        if type(m).__name__ == "DownscaleInInferDropout" and float(m.p) > 0
    ]
    if not ps:
        return 1.0
    if len(ps) > 1:
        raise ValueError(
            f"{arch}: {len(ps)} downscale-in-infer dropouts; expected at most one, "
            "before the classifier"
        )
    if num_classes == 0:
        raise ValueError(
            f"{arch}: without a classifier (num_classes=0) the inference-time "
            f"x{1 - ps[0]:g} of PaddleClas's head dropout has no timm counterpart"
        )
    return 1.0 - ps[0]


@lru_cache(maxsize=32)
def _timm_layout(timm_name: str, num_classes: int) -> tuple[dict[str, torch.Size], str]:
    """timm's state-dict keys -> shapes, in order, and the name of its classifier module.
    Built on the meta device: shapes only, no memory, no download."""
    with torch.device("meta"):
        ref = _timm().create_model(timm_name, pretrained=False, num_classes=num_classes)
    return {k: v.shape for k, v in ref.state_dict().items()}, ref.pretrained_cfg["classifier"]


def to_timm_state_dict(
    model_or_name: Union[str, nn.Module], weights: str | None = None
) -> tuple[str, dict[str, torch.Tensor]]:
    """Our weights renamed (and, where exact, re-parametrised) for timm's implementation.

    Args:
        model_or_name: a zoo model (as :func:`ssld_zoo.load` returns it, any ``num_classes``)
            or a name for :func:`ssld_zoo.load` (its published weights unless ``weights``).
        weights: with a name: a file or registered weight name to load instead.

    Returns:
        ``(timm_name, state_dict)``: ``timm.create_model(timm_name, num_classes=N)`` (N = the
        model's ``num_classes``) loads ``state_dict`` with ``strict=True`` and then gives our
        model's outputs. Tensors not re-parametrised share memory with the model's.

    Raises:
        KeyError: unknown name.
        ValueError: the architecture has no exact timm equivalent (the message lists the
            supported ones), or the model's tensors do not line up with timm's (the message
            names the architecture and the first mismatching keys and shapes).
        ImportError: timm is not installed.
    """
    model, arch = _resolve(model_or_name, weights)
    timm_name = TIMM_EQUIVALENTS[arch]
    rules = _RULES[arch]
    num_classes = int(getattr(model, "num_classes", 1000))
    target, classifier = _timm_layout(timm_name, num_classes)

    ours_all = model.state_dict()
    ours = [
        (k, v)
        for k, v in ours_all.items()
        if not _is_nbt(k) and not (rules.drop and re.fullmatch(rules.drop, k))
    ]
    zero_keys = {k for k in target if rules.zero and re.fullmatch(rules.zero, k)}
    theirs = [k for k in target if not _is_nbt(k) and k not in zero_keys]

    where = f"{arch} -> timm {timm_name}"
    for i, ((k, v), tk) in enumerate(zip(ours, theirs)):
        if tuple(v.shape) != tuple(target[tk]) or _leaf(k) != _leaf(tk):
            raise ValueError(
                f"{where}: tensor #{i} does not line up: ours {k} "
                f"{tuple(v.shape)}, timm's {tk} {tuple(target[tk])}"
            )
    if len(ours) != len(theirs):
        n = min(len(ours), len(theirs))
        first = (
            f"ours has {ours[n][0]} {tuple(ours[n][1].shape)}"
            if len(ours) > n
            else f"timm's has {theirs[n]} {tuple(target[theirs[n]])}"
        )
        raise ValueError(
            f"{where}: {len(ours)} tensors against timm's {len(theirs)}: after "
            f"#{n - 1}, {first} and more"
        )

    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}  # timm key -> our key
    for (k, v), tk in zip(ours, theirs):
        out[tk] = v.detach()
        source[tk] = k
    like = ours[0][1] if ours else torch.zeros(())
    for tk in zero_keys:
        out[tk] = torch.zeros(target[tk], dtype=like.dtype, device=like.device)
    for tk in target:
        if _is_nbt(tk):
            # Ours from the same BatchNorm (found through its running_mean), else 0.
            mean = source.get(tk[: -len("num_batches_tracked")] + "running_mean", "")
            count = mean[: -len("running_mean")] + "num_batches_tracked"
            out[tk] = (
                ours_all[count].detach()
                if mean and count in ours_all
                else torch.zeros((), dtype=torch.long, device=like.device)
            )

    keep = _head_keep(model, arch, num_classes)
    if keep != 1.0:
        fc = f"{classifier}.weight"
        if fc not in out:
            raise ValueError(f"{where}: timm's classifier {fc} not found")
        out[fc] = out[fc] * keep
    if out.keys() != target.keys() or any(out[k].shape != target[k] for k in out):
        raise ValueError(f"{where}: the converted keys or shapes differ from timm's")  # a bug
    return timm_name, out


def check_timm_state_dict(
    model: nn.Module,
    timm_name: str,
    state: dict[str, torch.Tensor],
    input_size: int = 64,
    rtol: float = 1e-4,
) -> float:
    """Load ``state`` into timm's ``timm_name`` (strictly) and compare outputs with ``model``.

    Both run in eval mode on the same seeded random batch of two ``input_size`` images.
    Returns the largest absolute difference; raises ``ValueError`` when it exceeds ``rtol``
    times the largest output magnitude (a wrong mapping is off by the output's own scale).
    """
    with torch.device("meta"):
        ref = _timm().create_model(
            timm_name, pretrained=False, num_classes=int(getattr(model, "num_classes", 1000))
        )
    # assign=True adopts the tensors instead of copying them into freshly initialised ones.
    ref.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in list(ref.parameters()) + list(ref.buffers())):
        # a buffer timm computes at construction (not in the state dict): build it for real
        ref = _timm().create_model(
            timm_name, pretrained=False, num_classes=int(getattr(model, "num_classes", 1000))
        )
        ref.load_state_dict(state, strict=True)
    param = next(model.parameters())
    x = torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    x = x.to(param.device, param.dtype)
    was_training = model.training
    model.eval()
    ref.eval()
    try:
        with torch.no_grad():
            ours, theirs = model(x), ref(x)
    finally:
        model.train(was_training)
    diff = (ours.float() - theirs.float()).abs().max().item()
    scale = ours.float().abs().max().item()
    if not diff <= rtol * scale + 1e-6:
        raise ValueError(
            f"timm's {timm_name} with the converted weights differs from ours by "
            f"{diff:.3g} (outputs up to {scale:.3g}): refusing the conversion"
        )
    return diff


@register_format
class TimmFormat(Format):
    """timm's model of the same network (``timm.create_model(name, pretrained=True,
    pretrained_cfg_overlay=dict(file=OUT))``), classifier included."""

    name = "timm"
    summary = "timm state dict (.safetensors) for timm's model of the same network"
    suffix = ".safetensors"

    def targets(self) -> dict[str, str]:
        return dict(TIMM_EQUIVALENTS)

    def why_not(self, arch: str) -> str:
        return NOT_EQUIVALENT.get(arch, "timm has no implementation of it")

    def convert(self, model: nn.Module, arch: str) -> Converted:
        timm_name, state = to_timm_state_dict(model)
        return Converted(
            self.name,
            arch,
            timm_name,
            state,
            {"num_classes": int(getattr(model, "num_classes", 1000))},
        )

    def check(self, model: nn.Module, converted: Converted) -> float:
        return check_timm_state_dict(model, converted.target, converted.state)

    def write(self, converted: Converted, out: Path) -> None:
        save_safetensors(
            converted.state, out, {"timm_model": converted.target, "arch": converted.arch}
        )

    def usage(self, converted: Converted, out: Path) -> str:
        n = converted.config["num_classes"]
        # timm drops a checkpoint's classifier when its cfg says another class count: say ours.
        extra = "" if n == 1000 else f", num_classes={n}"
        overlay = f"dict(file={str(out)!r}{extra})"
        return (
            f"timm.create_model({converted.target!r}, pretrained=True, "
            f"pretrained_cfg_overlay={overlay}{extra})"
        )
