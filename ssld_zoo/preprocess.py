"""The input side of a loaded model: the card of its weights, the eval transform they were
published with, and images read for it (shared by ``ssld-zoo predict`` and ``ssld-zoo export``).
"""

from __future__ import annotations

import io
import os
import re

import torch.nn as nn

from ssld_zoo.registry import EvalTransform, WeightCard, get_weights

__all__ = ["weight_card_of", "eval_transform_of", "decode_image", "shown_path"]


def weight_card_of(model: nn.Module) -> WeightCard | None:
    """The :class:`WeightCard` of the weights ``model`` was loaded with (``model.weight_card``,
    set by :func:`ssld_zoo.load`), or None."""
    return getattr(model, "weight_card", None)


def eval_transform_of(model: nn.Module, name: str | None = None) -> EvalTransform:
    """The eval preprocessing for ``model``: its weights' transform; for weights without a
    card (a plain file), that of the registered weights of ``name``; else the default
    (resize 256, centre crop 224, ImageNet mean and std)."""
    card = weight_card_of(model)
    if card is None and name is not None:
        card = get_weights(name)
    return card.transform if card is not None else EvalTransform()


def _to_8bit(im):
    """An 8-bit image for ``im``: 16-bit and 32-bit-integer grey (``I;16*``, ``I``: 16-bit PNG,
    TIFF and PGM files) scaled by 255/65535 instead of clipped to white, float grey (``F``) in
    [0, 1] scaled by 255; other modes unchanged. A range that cannot be scaled is a ValueError."""
    import numpy as np
    from PIL import Image

    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return im
    a = np.asarray(im)
    if a.size == 0:
        raise ValueError("it has no pixels")
    lo, hi = float(a.min()), float(a.max())
    if im.mode == "F":
        if not (np.isfinite(a).all() and 0.0 <= lo and hi <= 1.0):
            raise ValueError(
                f"float pixels in [{lo:g}, {hi:g}]; expected [0, 1] (convert it to 8 or 16 bits)"
            )
        scaled = a.astype(np.float64) * 255.0
    else:
        if not (0 <= lo and hi <= 65535):
            raise ValueError(
                f"32-bit integer pixels in [{lo:g}, {hi:g}]; expected 16-bit values "
                f"in [0, 65535] (convert it to 8 or 16 bits)"
            )
        scaled = a.astype(np.float64) * (255.0 / 65535.0)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))  # mode L


def shown_path(path: str | os.PathLike) -> str:
    """``path`` (or any text holding one) printable whatever its bytes: a name that is not
    UTF-8 holds surrogates that no console can encode; such bytes are shown as ``\\xNN``."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def decode_image(path: str | os.PathLike, data: bytes | None = None, reduce_to: int | None = None):
    """The RGB ``PIL.Image`` at ``path`` (8 bits per channel; 16-bit files scaled, not clipped).
    ``data``: the file's bytes, already read by the caller (who fingerprints them); ``path``
    then only names the file in messages. ``reduce_to``: a JPEG may be decoded at 1/2, 1/4 or
    1/8 scale (its DCT scaling, several times faster) as long as both sides stay at least this
    many pixels; other formats decode at full size.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for anything else that
    stops it: not an image, truncated, a range that cannot be scaled, or more pixels than
    ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's decompression-bomb limit, refused before the
    pixels are decoded). Every message names the file."""
    import warnings

    from PIL import Image

    if data is None and not os.path.isfile(path):
        raise FileNotFoundError(f"image {shown_path(path)} does not exist")
    limit = Image.MAX_IMAGE_PIXELS
    source = path if data is None else io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x the limit; the size check below refuses it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
        with im:
            width, height = im.size
            if limit is not None and width * height > limit:
                raise Image.DecompressionBombError(f"{width}x{height} = {width * height} pixels")
            if reduce_to is not None:
                im.draft("RGB", (reduce_to, reduce_to))
            return _to_8bit(im).convert("RGB")
    except Image.DecompressionBombError as e:
        # Pillow refuses over 2x the limit itself, before the size is known: "(N pixels)".
        size = str(e) if "=" in str(e) else f"{re.search(r'[0-9]+', str(e)).group()} pixels"
        raise ValueError(
            f"cannot read image {shown_path(path)}: {size} is over the limit of "
            f"{limit} pixels (PIL.Image.MAX_IMAGE_PIXELS, a decompression-bomb "
            f"guard; raise it only for files you trust)"
        ) from None
    except ValueError as e:
        raise ValueError(f"cannot read image {shown_path(path)}: {shown_path(e)}") from None
    except (OSError, SyntaxError, EOFError, MemoryError) as e:  # PIL's decoders raise these
        # Pillow names its source: the caller's path, not an in-memory buffer
        text = str(e).replace(repr(source), os.fspath(path)) if data is not None else str(e)
        reason = shown_path(text.splitlines()[0]) if text else "cannot decode it"
        raise ValueError(
            f"cannot read image {shown_path(path)}: {type(e).__name__}: {reason}"
        ) from None
