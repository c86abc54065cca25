"""Image files to uint8 CHW tensors for the training loaders.

A JPEG is decoded by torchvision's ``decode_jpeg`` (libjpeg-turbo, the same pixels as Pillow's)
and then augmented as a tensor: on the 640-px photos of coco_mini that is 1.32x the images per
CPU-second of Pillow + PIL transforms (``benchmarks/loader_speed.py``, docs/benchmarks.md).
Every other case goes through :func:`ssld_zoo.preprocess.decode_image`, which stays the one
place that says what an unreadable image is: other formats, JPEGs that are not RGB or grey
(CMYK: Pillow's colour conversion), images over Pillow's pixel limit (refused there before any
pixel is decoded), JPEGs without their end marker (truncated: Pillow refuses them where
libjpeg would fill in grey), and any JPEG torchvision fails on or warns about. torchvision 0.29
deprecates its decoders for TorchCodec's; if they go, every file goes through Pillow.
"""

from __future__ import annotations

import io
import os
import warnings

import torch

__all__ = ["decode_tensor"]

_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"


def _fast_jpeg(data: bytes) -> bool:
    """Whether ``data`` is a complete RGB or grey JPEG within Pillow's pixel limit (its
    header read by Pillow, no pixel decoded)."""
    if not data.startswith(_JPEG_START) or not data.rstrip(b"\0").endswith(_JPEG_END):
        return False
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                mode = im.mode
    except Exception:  # Pillow's decode_image names the problem
        return False
    limit = Image.MAX_IMAGE_PIXELS
    return mode in ("RGB", "L") and (limit is None or width * height <= limit)


def _torchvision_jpeg(data: bytes) -> torch.Tensor | None:
    """``data`` decoded by torchvision, or None where it fails, warns, or is gone."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # deprecated in torchvision 0.29 (TorchCodec's): Pillow after removal
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        try:
            x = decode_jpeg(
                torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
            )
        except RuntimeError:
            return None
    return None if caught else x


def decode_tensor(path: str | os.PathLike, data: bytes | None = None) -> torch.Tensor:
    """The RGB image at ``path`` as a uint8 (3, H, W) tensor; ``data``: its bytes, already read
    by the caller (``path`` then only names it in messages). Raises as
    :func:`~ssld_zoo.preprocess.decode_image` (``FileNotFoundError``, ``ValueError`` naming
    the file)."""
    from ssld_zoo.preprocess import decode_image

    if data is None and os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
    if data is not None and _fast_jpeg(data):
        x = _torchvision_jpeg(data)
        if x is not None:
            return x
    from torchvision.transforms.v2.functional import pil_to_tensor

    return pil_to_tensor(decode_image(path, data=data))
