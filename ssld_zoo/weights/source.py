"""The one seam for weights: a registered name, a local file or a URL -> a checked state dict.

:func:`load_weights` is what ``ssld_zoo.load``, ``SSLDBackbone``, ``ssld-zoo convert`` and
``ssld-zoo download`` (and, through ``load``, distillation and mining) call:

* a **registered weight name** (or its :class:`WeightCard`): the converted tensors from
  ``converted/<name>.safetensors``, checked on every load (a damaged file is quarantined,
  with a warning, and rebuilt); else the published file is obtained (cache, mirror,
  download; see :mod:`.download`), converted, checked and cached atomically;
* a **URL**: the file is obtained the same way, and converted on each load;
* a **local file**: read, converted and checked (``.pdparams``, ``.pth``/``.pt``,
  ``.safetensors``), with the model card beside it if there is one.

"Checked" always means: keys, shapes and dtypes of the architecture, finite values,
BatchNorm variances not negative (:func:`~ssld_zoo.weights.convert.check_state_dict`).
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

from ssld_zoo.registry import WeightCard, get_arch, get_weights, list_weights
from ssld_zoo.weights.cache import converted_path, quarantine
from ssld_zoo.weights.convert import check_state_dict
from ssld_zoo.weights.download import obtain
from ssld_zoo.weights.errors import (
    CacheRepairWarning,
    DeadlineError,
    StateDictMismatch,
    WeightsFileError,
)
from ssld_zoo.weights.fetch import Deadline
from ssld_zoo.weights.fileops import LockTimeout, atomic_write, locked
from ssld_zoo.weights.files import (
    SUFFIXES,
    load_state_file,
    read_safetensors,
    sidecar_card,
    state_bytes,
)
from ssld_zoo.weights.settings import settings
from ssld_zoo.weights.urls import file_name_for, is_url

__all__ = ["Source", "Weights", "parse_source", "load_weights", "reference_model"]

CONVERTED_FORMAT = "1"  # bump to rebuild every converted file after a converter change


@dataclass(frozen=True)
class Source:
    """What a ``weights=`` value means: ``kind`` is ``"registered"``, ``"file"`` or ``"url"``."""

    kind: str
    text: str
    card: WeightCard | None = None
    path: Path | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Weights:
    """Checked tensors, the card that describes them (the registered card, or a file's
    sidecar card; None for a bare file or URL), and where they came from."""

    state: dict[str, torch.Tensor]
    card: WeightCard | None
    origin: str


def parse_source(source: str | os.PathLike | WeightCard | Source) -> Source:
    """Classify a ``weights=`` value, with a one-line error for what it cannot be.

    An existing path wins over a registered name of the same spelling; ``http(s)://`` is a
    URL. Raises TypeError for a value that is not a str/path/card, FileNotFoundError for a
    missing file, ValueError (with close names) for anything else."""
    if isinstance(source, Source):
        return source
    if isinstance(source, WeightCard):
        return Source("registered", source.name, card=source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"weights must be a registered weight name, a file path or a URL, got "
            f"{source!r} ({type(source).__name__})"
        )
    text = os.fsdecode(os.fspath(source))
    if not text.strip():
        raise ValueError(
            "weights is an empty string: give a registered weight name, a file path or a URL"
        )
    if is_url(text):
        file_name_for(text)  # a one-line ValueError for a URL without a usable file name
        return Source("url", text)
    if os.path.exists(text):
        return Source("file", text, path=Path(text))
    registered = [c.name for c in list_weights()]
    if text in registered:
        return Source("registered", text, card=get_weights(text))
    if text.lower().endswith(SUFFIXES) or os.sep in text or text.startswith("."):
        raise FileNotFoundError(f"weights file {text} does not exist")
    close = difflib.get_close_matches(text, registered, n=5, cutoff=0.5)
    raise ValueError(
        f"weights {text!r} are neither a registered weight name, an existing "
        "file nor a URL"
        + (
            f"; did you mean: {', '.join(close)}?"
            if close
            else "; `ssld-zoo list --pretrained` shows the names"
        )
    )


@lru_cache(maxsize=16)
def reference_model(arch: str) -> nn.Module:
    """Architecture ``arch`` built with its defaults on the meta device (no memory, no init):
    what weights are checked against. Shared: do not modify it."""
    spec = get_arch(arch)
    with torch.device("meta"):
        model = spec.builder()
    model.arch_name = spec.name
    return model


def load_weights(
    source: str | os.PathLike | WeightCard | Source,
    arch: str,
    *,
    fits: nn.Module | None = None,
    progress: bool = True,
) -> Weights:
    """The checked tensors of ``source`` for architecture ``arch``.

    Args:
        source: a registered weight name (or card), a local weights file, or a URL.
        arch: the architecture (or weight) name the tensors are for.
        fits: the model they must fit, if not ``arch`` built with its defaults (a model built
            with a 10-class head, say); any device, the meta device is cheapest.
        progress: show a download progress bar (only when stderr is a terminal).

    Raises:
        StateDictMismatch, WeightValueError, PdparamsError: the tensors are not acceptable
            (one line naming the file, keys and what was expected).
        DownloadError and its kinds: the file could not be obtained (see
            :func:`ssld_zoo.weights.download.obtain`).
    """
    src = parse_source(source)
    arch = get_arch(arch).name
    model = fits if fits is not None else reference_model(arch)
    if src.kind == "file":
        state = load_state_file(src.path, arch, model)
        return Weights(state, sidecar_card(src.path), str(src.path))
    if src.kind == "url":
        _, state, _ = obtain(
            [src.text],
            lambda p, name: load_state_file(p, arch, model, src.text, Path(name).suffix),
            arch=arch,
            progress=progress,
        )
        return Weights(state, None, src.text)
    card = src.card
    state = registered_state(card, progress=progress)
    if card.arch != arch or fits is not None:
        try:
            check_state_dict(state, model, f"weights {card.name!r}", values=False)
        except StateDictMismatch as e:
            raise StateDictMismatch(f"{e}; they are for architecture {card.arch!r}") from None
    return Weights(state, card, card.name)


def _read_converted(path: Path, card: WeightCard, ref: nn.Module) -> dict[str, torch.Tensor] | None:
    """The converted cache entry of ``card``, or None; a damaged one is quarantined."""
    if not path.is_file():
        return None
    try:
        state, meta = read_safetensors(path, max_bytes=3 * state_bytes(ref) + (1 << 20))
        # Files from before the format was recorded hold the same conversion: accepted.
        if (
            meta.get("weights") != card.name
            or meta.get("converted", CONVERTED_FORMAT) != CONVERTED_FORMAT
        ):
            raise WeightsFileError(
                f"{path}: written for {meta.get('weights')!r} by converter "
                f"format {meta.get('converted')!r}, expected {card.name!r} "
                f"format {CONVERTED_FORMAT!r}"
            )
        check_state_dict(state, ref, str(path))
    except WeightsFileError as e:
        where = quarantine(path)
        warnings.warn(
            f"damaged converted cache entry: {e}; moved it to {where} and converting "
            f"{card.name} again",
            CacheRepairWarning,
            stacklevel=4,
        )
        return None
    return state


def registered_state(card: WeightCard, progress: bool = True) -> dict[str, torch.Tensor]:
    """The checked tensors of a registered weight, from the converted cache when it is sound,
    else obtained, converted and cached (atomically) so that the next call converts nothing."""
    from safetensors.torch import save_file

    ref = reference_model(card.arch)
    conv = converted_path(card)
    state = _read_converted(conv, card, ref)
    if state is not None:
        return state
    deadline = Deadline(settings().deadline_s)  # the lock wait and the download together
    try:
        with locked(conv, deadline.remaining()):  # one converter per weight at a time
            state = _read_converted(conv, card, ref)  # another process may have built it
            if state is None:
                raw, state, digest = obtain(
                    card.urls,
                    lambda p, name: load_state_file(p, card.arch, ref, name, Path(name).suffix),
                    arch=card.arch,
                    sha256=card.sha256,
                    progress=progress,
                    deadline=deadline,
                )
                metadata = {
                    "weights": card.name,
                    "arch": card.arch,
                    "source": raw.name,
                    "source_sha256": digest,
                    "converted": CONVERTED_FORMAT,
                }
                atomic_write(
                    conv,
                    lambda tmp: save_file(
                        {k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata
                    ),
                )
    except LockTimeout as e:
        raise DeadlineError(f"{card.name}: {e} (SSLD_ZOO_DOWNLOAD_DEADLINE)") from None
    return state
