"""What every conversion format shares: the format registry, strict key renaming, the
feature comparison that proves a conversion, and atomic writers.

A format (one module each: :mod:`~ssld_zoo.interop.timm_weights`, :mod:`~.mmdet`, :mod:`~.hf`,
:mod:`~.rtdetr`, :mod:`~.dfine`) is a :class:`Format` subclass registered by name with
:func:`register_format`. It says which architectures have a twin in its layout
(:meth:`Format.targets`) and why the others have none (:meth:`Format.why_not`), renames our
state dict (:meth:`Format.convert`, built on :func:`rename_state`), proves the result by
running the target network (:meth:`Format.check`, built on :func:`compare_stages`), writes it
where its consumer loads it (:meth:`Format.write`) and prints the line that loads it
(:meth:`Format.usage`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch
import torch.nn as nn

__all__ = [
    "Converted",
    "Format",
    "register_format",
    "get_format",
    "list_formats",
    "formats_for",
    "rename_state",
    "compare_stages",
    "probe_batch",
    "stage_outputs",
    "save_pth",
    "save_safetensors",
    "replace_dir",
    "ResNetVdKey",
    "resnet_vd_state",
    "convert",
]


@dataclass
class Converted:
    """A converted state dict and what its consumer needs beside it.

    ``target``: the consumer's model, in words (``"mmdet ResNetV1d(depth=50)"``);
    ``config``: what builds that model (timm name, mmdet arguments, transformers config...).
    """

    format: str
    arch: str
    target: str
    state: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)


class Format:
    """One layout that other code loads. Subclasses set ``name``, ``summary`` and ``suffix``
    (the output's file ending; ``""`` for a folder) and implement the methods below."""

    name = ""
    summary = ""
    suffix = ""

    def targets(self) -> dict[str, str]:
        """Our architecture -> the consumer's model of the same network."""
        raise NotImplementedError

    def why_not(self, arch: str) -> str:
        """Why ``arch`` has no twin in this layout (for architectures not in targets())."""
        return "no model of this layout is the same network"

    def convert(self, model: nn.Module, arch: str) -> Converted:
        raise NotImplementedError

    def check(self, model: nn.Module, converted: Converted) -> float:
        """Run the consumer's model with ``converted`` and compare with ``model``: the largest
        absolute feature difference; ValueError when it is not a rounding difference,
        ImportError when the consumer's library is not installed."""
        raise NotImplementedError

    def write(self, converted: Converted, out: Path) -> None:
        raise NotImplementedError

    def usage(self, converted: Converted, out: Path) -> str:
        """The line (config entry or Python call) that loads ``out`` in the consumer."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------
    def refuse_unless_supported(self, arch: str) -> str:
        """The target of ``arch``, or ValueError saying why there is none (with the list)."""
        targets = self.targets()
        if arch not in targets:
            raise ValueError(
                f"{arch!r} cannot be written as {self.name!r} "
                f"({self.why_not(arch)}). Supported: {', '.join(sorted(targets))}"
            )
        return targets[arch]

    def check_output_path(self, out: Path) -> None:
        if self.suffix and out.suffix != self.suffix:
            raise ValueError(f"output {out} must end in {self.suffix} for format {self.name!r}")
        if not self.suffix and out.suffix:
            raise ValueError(
                f"output {out} must be a folder name (no suffix) for format {self.name!r}"
            )


_FORMATS: dict[str, Format] = {}


def register_format(cls: type[Format]) -> type[Format]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name or cls.name in _FORMATS:
        raise ValueError(f"format name {cls.name!r} is empty or already registered")
    _FORMATS[cls.name] = cls()
    return cls


def _ensure_loaded() -> None:
    # Each format registers itself when its module is imported.
    import ssld_zoo.interop.dfine  # noqa: F401
    import ssld_zoo.interop.hf  # noqa: F401
    import ssld_zoo.interop.mmdet  # noqa: F401
    import ssld_zoo.interop.rtdetr  # noqa: F401
    import ssld_zoo.interop.timm_weights  # noqa: F401


def get_format(name: str) -> Format:
    _ensure_loaded()
    if name not in _FORMATS:
        raise KeyError(f"unknown format {name!r}: expected one of {', '.join(sorted(_FORMATS))}")
    return _FORMATS[name]


def list_formats() -> list[str]:
    _ensure_loaded()
    return sorted(_FORMATS)


def formats_for(arch: str) -> list[str]:
    """The formats ``arch`` converts to (those with a twin of it)."""
    return [name for name in list_formats() if arch in _FORMATS[name].targets()]


Rule = tuple[str, "str | None"]


def rename_state(
    state: dict[str, torch.Tensor], rules: Sequence[Rule] | Callable[[str], str | None], where: str
) -> dict[str, torch.Tensor]:
    """``state`` with every key renamed: by the first ``(regex, replacement)`` rule whose
    regex matches the whole key (replacement None: the key is dropped), or by a function
    ``key -> new key | None``. A key no rule matches, or two keys landing on one name, is a
    ValueError naming the key: a conversion never passes a tensor through unexamined."""
    compiled = [(re.compile(p), r) for p, r in rules] if not callable(rules) else None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if compiled is None:
            new = rules(key)
        else:
            for pattern, repl in compiled:
                m = pattern.fullmatch(key)
                if m:
                    new = None if repl is None else m.expand(repl)
                    break
            else:
                raise ValueError(f"{where}: no rule for our key {key!r}")
        if new is None:
            continue
        if new in out:
            raise ValueError(f"{where}: two keys map to {new!r} (the second is {key!r})")
        out[new] = value.detach()
    return out


class ResNetVdKey(NamedTuple):
    """One tensor of our ResNet_vd, by meaning: ``part`` is ``"stem<j>"``, ``"conv<c>"`` or
    ``"short"``; ``stage`` and ``index`` place its block (-1 in the stem); ``layer`` is
    ``"conv"`` or ``"bn"``; ``leaf`` the tensor's name."""

    part: str
    stage: int
    index: int
    layer: str
    leaf: str


_RESNET_VD_KEY = re.compile(
    r"(?:stem\.(?P<stem>\d)|blocks\.(?P<block>\d+)\.(?P<part>conv\d|short))"
    r"\.(?P<layer>conv|bn)\.(?P<leaf>\w+)"
)


def resnet_vd_state(
    model: nn.Module, name: Callable[[ResNetVdKey], str], where: str
) -> dict[str, torch.Tensor]:
    """Our ResNet_vd's tensors under another layout's names, ``name(key)`` for each; the
    classifier (``fc.*``), which no detector layout holds, is dropped. A key that is not
    ResNet_vd's is a ValueError naming it."""
    # (stage, index in stage) of each flat ``blocks.N``: the stage ends say where stages stop
    ends = [int(f.module.split(".")[1]) for f in model.feature_info]
    positions, start = [], 0
    for stage, end in enumerate(ends):
        positions += [(stage, i) for i in range(end - start + 1)]
        start = end + 1

    def rename(key: str) -> str | None:
        if key.startswith("fc."):
            return None
        m = _RESNET_VD_KEY.fullmatch(key)
        if m is None:
            raise ValueError(f"{where}: {key!r} is not a ResNet_vd key")
        if m["stem"] is not None:
            return name(ResNetVdKey(f"stem{m['stem']}", -1, -1, m["layer"], m["leaf"]))
        stage, index = positions[int(m["block"])]
        return name(ResNetVdKey(m["part"], stage, index, m["layer"], m["leaf"]))

    return rename_state(model.state_dict(), rename, where)


def probe_batch(size: int = 64, like: torch.Tensor | None = None) -> torch.Tensor:
    """The seeded random batch (two images) every check runs."""
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    return x if like is None else x.to(like.device, like.dtype)


@torch.no_grad()
def stage_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Our model's per-stage features (eval mode; the mode is restored)."""
    was = model.training
    model.eval()
    try:
        return list(model.forward_stages(x))
    finally:
        model.train(was)


def compare_stages(
    ours: Sequence[torch.Tensor], theirs: Sequence[torch.Tensor], where: str, rtol: float = 1e-4
) -> float:
    """The largest absolute difference over the stage features; ValueError when the counts or
    shapes differ or a stage differs by more than ``rtol`` of its own largest magnitude (a
    wrong mapping is off by the feature's own scale, rounding by 1e-6 of it)."""
    if len(ours) != len(theirs):
        raise ValueError(f"{where}: {len(theirs)} stage outputs, ours {len(ours)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a.shape != b.shape:
            raise ValueError(f"{where}: stage {i} is {tuple(b.shape)}, ours {tuple(a.shape)}")
        diff = (a.float() - b.float()).abs().max().item()
        scale = a.float().abs().max().item()
        if not diff <= rtol * scale + 1e-6:
            raise ValueError(
                f"{where}: stage {i} differs from ours by {diff:.3g} (features up "
                f"to {scale:.3g}): refusing the conversion"
            )
        worst = max(worst, diff)
    return worst


def save_pth(state: dict[str, Any], out: Path) -> None:
    """``torch.save`` through a temp file and rename: loadable with
    ``torch.load(out, weights_only=True)`` (tensors, strings, numbers and dicts only)."""
    from ssld_zoo.weights.fileops import atomic_write

    atomic_write(out, lambda tmp: torch.save(state, tmp))


def save_safetensors(state: dict[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    from ssld_zoo.weights.fileops import atomic_write

    atomic_write(
        out,
        lambda tmp: save_file(
            {k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata
        ),
    )


def replace_dir(out: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh temp folder beside ``out`` and rename it into place, so that ``out`` is
    never half written; an existing ``out`` is replaced only once the new one is complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        fill(tmp)
        if out.exists():
            if not out.is_dir():
                raise ValueError(f"output {out} exists and is not a folder")
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert(
    format_name: str, model_or_name: str | nn.Module, weights: str | None = None
) -> tuple[nn.Module, Converted]:
    """A zoo model's weights in ``format_name``'s layout: ``(model, converted)``.

    Args:
        format_name: one of :func:`list_formats`.
        model_or_name: a model from :func:`ssld_zoo.load` or a name for it (its published
            weights unless ``weights``); an architecture without a twin in the layout is
            refused, naming the reason, before anything is loaded or downloaded.
        weights: with a name, a file or registered weight name to convert instead.
    """
    from ssld_zoo.registry import get_arch

    fmt = get_format(format_name)
    if isinstance(model_or_name, str):
        arch = get_arch(model_or_name).name
        fmt.refuse_unless_supported(arch)
        import ssld_zoo

        model = (
            ssld_zoo.load(model_or_name)
            if weights is None
            else ssld_zoo.load(model_or_name, weights=weights)
        )
    else:
        if weights is not None:
            raise ValueError("weights= goes with an architecture name, not with a model")
        model = model_or_name
        arch = getattr(model, "arch_name", None)
        if arch is None:
            raise ValueError(
                f"cannot tell which architecture this {type(model).__name__} is "
                f"(no arch_name: build it with ssld_zoo.load, or pass its name)"
            )
        fmt.refuse_unless_supported(arch)
    return model, fmt.convert(model, arch)
