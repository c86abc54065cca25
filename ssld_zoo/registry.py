"""Names -> architecture builders and weight cards.

Two registries, both keyed by PaddleClas's model names in lower case:

* architectures (``resnet50_vd``): a builder function registered with :func:`register_model`
  in the family's file under ``ssld_zoo/models/``;
* weights (``resnet50_vd`` = PaddleClas's baseline weights, ``resnet50_vd_ssld`` = the SSLD
  weights): a :class:`WeightCard` registered with :func:`register_weights`, carrying the source
  URLs, checksum, published accuracy and eval transform, as torchvision's weight enums do.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Where the published numbers come from (PaddlePaddle/PaddleClas, commit d178931).
SSLD_DOC = "PaddleClas docs/zh_CN/training/advanced/ssld.md"
PADDLE_BASE = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"


@dataclass(frozen=True)
class EvalTransform:
    """The evaluation preprocessing a weight was published with (PaddleClas's eval config):
    resize the short side to ``resize``, centre-crop ``input_size``, normalise by ``mean`` and
    ``std``. The one description of an input pipeline in ssld-zoo: predict, distillation
    validation, mining, transfer, export and the demo all build theirs from a card's."""

    input_size: int = 224
    resize: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    INTERPOLATIONS = ("nearest", "bilinear", "bicubic")

    def __post_init__(self) -> None:
        for key in ("input_size", "resize"):
            v = getattr(self, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"transform {key}={v!r}: expected an integer >= 1")
        if self.interpolation not in self.INTERPOLATIONS:
            raise ValueError(
                f"transform interpolation={self.interpolation!r}: expected one of "
                f"{', '.join(self.INTERPOLATIONS)}"
            )
        for key in ("mean", "std"):
            v = getattr(self, key)
            if not (
                isinstance(v, (list, tuple))
                and len(v) == 3
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            ):
                raise ValueError(f"transform {key}={v!r}: expected 3 numbers")
            object.__setattr__(self, key, tuple(float(x) for x in v))
        if not all(x > 0 for x in self.std):
            raise ValueError(f"transform std={self.std}: expected 3 positive numbers")

    def _with(self, overrides: dict, where: str) -> "EvalTransform":
        """This transform with ``overrides``; an unknown key or a bad value is a ValueError
        whose message starts with ``where``."""
        bad = sorted(set(overrides) - set(self.__dataclass_fields__))
        if bad:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(bad)}; valid: "
                f"{', '.join(self.__dataclass_fields__)}"
            )
        try:
            return dataclasses.replace(self, **overrides)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    @classmethod
    def check_overrides(cls, overrides: dict, where: str = "transform") -> None:
        """Raise ValueError naming an unknown key or a bad value of ``overrides``."""
        cls()._with(overrides, where)

    def replace(self, **overrides) -> "EvalTransform":
        """This transform with some fields changed (unknown keys are a ValueError)."""
        return self._with(overrides, "transform")

    def at_size(self, input_size: int) -> "EvalTransform":
        """The same pipeline at another crop size, keeping the crop ratio (resize / crop)."""
        return self.replace(
            input_size=input_size,
            resize=max(input_size, round(input_size * self.resize / self.input_size)),
        )

    def to_dict(self) -> dict:
        """JSON-ready fields (what a model card stores under ``transform``)."""
        return {
            "input_size": self.input_size,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "transform") -> "EvalTransform":
        """The transform a card's ``transform`` dict describes; bad keys name ``where``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        return cls()._with(data, where)

    def resize_crop(self):
        """PIL image or uint8 tensor -> uint8 CHW tensor: resize and centre crop, not
        normalised (the data preprocessors of training and mining normalise on the device)."""
        from torchvision.transforms import v2 as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        # Resize before ToImage: a PIL image is resized by PIL (as timm's and the training
        # transform's are), a tensor by torch.
        return T.Compose(
            [
                T.Resize(self.resize, interpolation=mode, antialias=True),
                T.CenterCrop(self.input_size),
                T.ToImage(),
                T.ToPureTensor(),
            ]
        )

    def build(self):
        """A torchvision transform: PIL image or uint8 tensor -> normalised float tensor."""
        import torch
        from torchvision.transforms import v2 as T

        return T.Compose(
            [
                self.resize_crop(),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(self.mean, self.std),
            ]
        )


@dataclass(frozen=True)
class FeatureInfo:
    """One stage output of a backbone: its channels, its stride to the input, and the
    dotted name of the sub-module that produces it (the same name PaddleClas uses)."""

    channels: int
    reduction: int
    module: str

    _TIMM_KEYS = {"num_chs": "channels", "reduction": "reduction", "module": "module"}

    def to_dict(self) -> dict:
        """timm's form: ``{'num_chs': ..., 'reduction': ..., 'module': ...}``."""
        return {k: getattr(self, a) for k, a in self._TIMM_KEYS.items()}

    def __getitem__(self, key: str):
        # Code written for timm reads feature_info entries as dicts.
        if key not in self._TIMM_KEYS:
            raise KeyError(f"feature_info entries have keys {sorted(self._TIMM_KEYS)}, not {key!r}")
        return getattr(self, self._TIMM_KEYS[key])

    def get(self, key: str, default=None):
        return self[key] if key in self._TIMM_KEYS else default


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: the builder and the PaddleClas class it equals."""

    name: str
    builder: Callable[..., nn.Module]
    paddle_name: str
    family: str


@dataclass(frozen=True)
class WeightCard:
    """Everything known about one set of published weights (a "model card").

    ``top1`` is the published ImageNet-1k top-1 of these weights; for an SSLD weight
    ``baseline_top1`` is that of the same architecture trained normally, so that the card
    states what SSLD gained.
    """

    name: str
    arch: str
    urls: tuple[str, ...]
    top1: float | None
    top1_source: str
    baseline_top1: float | None = None
    teacher: str | None = None
    sha256: str | None = None
    transform: EvalTransform = field(default_factory=EvalTransform)
    license: str = "Apache-2.0"
    num_classes: int = 1000
    description: str = ""

    @property
    def file_name(self) -> str:
        """The cached file name of the first URL (a Google Drive URL names it in its fragment)."""
        from ssld_zoo.weights.urls import file_name_for

        return file_name_for(self.urls[0])

    @property
    def is_ssld(self) -> bool:
        return "_ssld" in self.name

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["file_name"] = self.file_name
        return d

    def to_json(self) -> dict:
        """The card as a JSON object (what an exported weights file's ``.json`` sidecar holds;
        :meth:`from_json` reads it back)."""
        d = dataclasses.asdict(self)
        d["urls"] = list(self.urls)
        d["transform"] = self.transform.to_dict()
        return d

    @classmethod
    def from_json(cls, data: dict, where: str = "model card") -> "WeightCard":
        """A card from :meth:`to_json`'s form; keys it does not know (e.g. ``training``) are
        ignored. A missing or mistyped field is a ValueError naming ``where`` and the field."""
        if not isinstance(data, dict):
            raise ValueError(
                f"{where}: a model card must be a JSON object, got {type(data).__name__}"
            )
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields.setdefault("top1", None)
        fields.setdefault("top1_source", "")
        for key in ("name", "arch", "urls"):
            if key not in fields:
                raise ValueError(f"{where}: no {key!r}")
        if "transform" in fields:
            fields["transform"] = EvalTransform.from_dict(
                fields["transform"], f"{where}: 'transform'"
            )
        urls = fields["urls"]
        checks = (
            ("name", isinstance(fields["name"], str), "a string"),
            ("arch", isinstance(fields["arch"], str), "a string"),
            (
                "urls",
                isinstance(urls, (list, tuple)) and all(isinstance(u, str) for u in urls),
                "a list of strings",
            ),
            (
                "num_classes",
                "num_classes" not in fields
                or (
                    isinstance(fields["num_classes"], int)
                    and not isinstance(fields["num_classes"], bool)
                    and fields["num_classes"] >= 1
                ),
                "a positive int",
            ),
            (
                "top1",
                fields["top1"] is None
                or (
                    isinstance(fields["top1"], (int, float))
                    and not isinstance(fields["top1"], bool)
                ),
                "a number",
            ),
        )
        for key, ok, want in checks:
            if not ok:
                raise ValueError(f"{where}: {key!r} is {fields[key]!r}; expected {want}")
        fields["urls"] = tuple(urls)
        return cls(**fields)


_ARCHS: dict[str, Architecture] = {}
_WEIGHTS: dict[str, WeightCard] = {}


def register_model(paddle_name: str):
    """Decorator registering a builder under its function name (timm's style)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} is registered twice")
        family = fn.__module__.rsplit(".", 1)[-1]
        _ARCHS[name] = Architecture(name, fn, paddle_name, family)
        return fn

    return wrap


def register_weights(*cards: WeightCard) -> None:
    """Register weight cards; each must name a registered architecture."""
    for card in cards:
        if card.arch not in _ARCHS:
            raise ValueError(f"weights {card.name!r} name unknown architecture {card.arch!r}")
        if card.name in _WEIGHTS:
            raise ValueError(f"weights {card.name!r} are registered twice")
        if card.name in _ARCHS and card.name != card.arch:
            raise ValueError(f"weights {card.name!r} shadow another architecture")
        _WEIGHTS[card.name] = card


def _ensure_loaded() -> None:
    # Importing the models package runs every family's registrations.
    import ssld_zoo.models  # noqa: F401


def all_names() -> list[str]:
    _ensure_loaded()
    return sorted(set(_ARCHS) | set(_WEIGHTS))


def _unknown(name: str, kind: str = "model") -> KeyError:
    close = difflib.get_close_matches(name.lower(), all_names(), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return KeyError(f"unknown {kind} {name!r}.{hint} `ssld-zoo list` shows all registered names.")


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(
            f"a model name must be a str such as 'resnet50_vd_ssld', got {name!r} "
            f"({type(name).__name__})"
        )


def get_arch(name: str) -> Architecture:
    """The architecture behind a model or weight name."""
    _check_name(name)
    _ensure_loaded()
    if name in _ARCHS:
        return _ARCHS[name]
    if name in _WEIGHTS:
        return _ARCHS[_WEIGHTS[name].arch]
    raise _unknown(name)


def get_weights(name: str) -> WeightCard | None:
    """The weight card of a name: ``resnet50_vd_ssld`` its own, ``resnet50_vd`` the baseline's.
    None when the architecture has no published weights."""
    _check_name(name)
    _ensure_loaded()
    if name in _WEIGHTS:
        return _WEIGHTS[name]
    if name in _ARCHS:
        return None
    raise _unknown(name)


def checkpoint_filter(name: str) -> Callable[[dict], dict] | None:
    """The ``checkpoint_filter_fn(state) -> state`` of the family file that defines ``name``'s
    architecture, if it has one: it maps foreign key names (PaddleClas 2.0/2.1, torchvision's
    ResNeXt) onto the zoo's, as timm's filter functions do."""
    module = importlib.import_module(get_arch(name).builder.__module__)
    return getattr(module, "checkpoint_filter_fn", None)


def list_architectures() -> list[str]:
    _ensure_loaded()
    return sorted(_ARCHS)


def list_weights() -> list[WeightCard]:
    _ensure_loaded()
    return [_WEIGHTS[k] for k in sorted(_WEIGHTS)]


def list_models(pattern: str | None = None, pretrained: bool | None = None) -> list[str]:
    """Every name :func:`ssld_zoo.load` accepts, optionally filtered.

    Args:
        pattern: shell-style pattern (``'*_ssld'``, ``'resnet*'``), case-insensitive.
        pretrained: True keeps names with published weights, False those without.
    """
    names: Iterable[str] = all_names()
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern.lower())]
    if pretrained is not None:
        names = [n for n in names if (n in _WEIGHTS) == pretrained]
    return list(names)
