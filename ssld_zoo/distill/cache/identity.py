"""What a teacher cache records to recognise its teacher and its images, cheaply.

* The teacher: the sha256 of its weights file (read once per process and file version; the
  teacher is not built to hash it), or for a registered weight its card's published sha256,
  else the one the weights cache recorded when the download first validated; only a teacher
  with none of these (random initialisation in tests and benchmarks, a weight never
  downloaded) is built and its state dict hashed.
* Each image: its size and a 64-bit BLAKE2b fingerprint of the bytes that are decoded, read
  once for both (:func:`read_identified`): training compares them with the record before it
  uses the teacher's stored outputs, so a replaced image is refused, naming the file.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import Any

__all__ = ["teacher_identity", "file_sha256", "fingerprint", "read_identified"]


@lru_cache(maxsize=64)
def _file_sha256(real: str, size: int, mtime_ns: int, inode: int) -> str:
    from ssld_zoo.weights.fileops import sha256_of

    return sha256_of(real)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, computed once per process for each version (path, size, mtime)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return _file_sha256(real, st.st_size, st.st_mtime_ns, st.st_ino)


def teacher_identity(teacher: str | dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """What a cache records of a recipe's teacher spec (``model.teacher``: a zoo name, a timm /
    torchvision model, a builder): what it is, where its weights were found, its BatchNorm mode
    and ``weights_sha256`` (see the module docstring)."""
    from ssld_zoo.distill.distiller import split_model_spec
    from ssld_zoo.engine.models import spec_text

    model_cfg, run = split_model_spec(teacher)
    weights = model_cfg.get("weights")
    ident = {
        "name": spec_text(model_cfg),
        "weights": weights,
        "pretrained": model_cfg.get("pretrained"),
        "bn_mode": run.get("bn_mode", "eval"),
    }
    if weights is not None and os.path.isfile(weights):
        return {**ident, "weights_sha256": file_sha256(weights)}
    zoo = model_cfg["type"] == "ZooModel"
    if zoo and (weights is not None or model_cfg.get("pretrained", True)):
        # a registered weight: the teacher's own published weights, or one named by weights=
        from ssld_zoo.registry import get_weights

        try:
            card = get_weights(weights if weights is not None else model_cfg["name"])
        except (KeyError, ValueError):  # a URL or another name: built and hashed below
            card = None
        # its published sha256, else the one recorded when its download first validated
        from ssld_zoo.weights.trust import recorded_sha256

        digest = card and (card.sha256 or recorded_sha256(card.file_name))
        if digest:
            return {**ident, "weights_sha256": f"card:{card.name}:{digest}"}
    return {**ident, "weights_sha256": _built_sha256(teacher, seed)}


def _built_sha256(teacher: str | dict[str, Any], seed: int) -> str:
    """sha256 of the state dict of the teacher built as a recipe builds it (a randomly
    initialised teacher is the same on every call with the same seed)."""
    import torch

    from ssld_zoo.distill.distiller import build_teacher_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = build_teacher_model(teacher)
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def fingerprint(data: bytes) -> int:
    """A 64-bit content fingerprint (BLAKE2b): cheap next to decoding the same bytes."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def read_identified(path: str, where: tuple[int, int] | None = None):
    """``(RGB uint8 CHW tensor or None, (size, fingerprint) or None)``: the file read once,
    fingerprinted and decoded from the same bytes as the training loader decodes them
    (:func:`ssld_zoo.data.decode.decode_tensor`: cached and online views hold the same
    pixels). An image that cannot be decoded gives ``(None, identity)``, a file that cannot
    be read ``(None, None)`` (logged, naming it). ``where``: a tar member's offset and size,
    when the caller's sample table has them."""
    from ssld_zoo.data.decode import decode_tensor
    from ssld_zoo.data.images import log
    from ssld_zoo.data.shards import read_bytes

    try:
        data = read_bytes(path, where)  # a file, or a tar shard's member (<tar>#<member>)
    except OSError as e:
        log.warning("skipping unreadable image: %s: %s", path, e.strerror or e)
        return None, None
    ident = (len(data), fingerprint(data))
    try:
        return decode_tensor(path, data=data), ident
    except Exception as e:  # any decoding failure: skip the sample, never crash the run
        log.warning("skipping unreadable image: %s", e)
        return None, ident
