"""What the model tests share: PaddleClas's key listings and our state dicts in Paddle's layout."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ssld_zoo.registry import get_arch

# shared/reference/paddle_keys/<Model>.txt: every key with shape, as PaddleClas 2.6.0 builds it.
KEYS_DIR = Path(
    os.environ.get(
        "SSLD_ZOO_PADDLE_KEYS",
        Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "paddle_keys",
    )
)


def paddle_style_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """The model's state dict as PaddleClas names and lays it out (BN stats, Linear [in, out])."""
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        shape = tuple(v.shape)[::-1] if k in linear else tuple(v.shape)
        out[k.replace(".running_mean", "._mean").replace(".running_var", "._variance")] = shape
    return out


def read_key_file(path: Path) -> dict[str, tuple[int, ...]]:
    """``name [d0,d1,...] dtype`` lines -> {name: shape}."""
    keys = {}
    for line in path.read_text().splitlines():
        name, shape, _dtype = line.split()
        keys[name] = tuple(int(s) for s in shape.strip("[]").split(",") if s)
    return keys


def meta_model(name: str, **kwargs) -> torch.nn.Module:
    """The architecture on the meta device: names and shapes, no memory, no init."""
    with torch.device("meta"):
        return get_arch(name).builder(**kwargs)


def assert_keys_equal_paddle_dump(name: str, dump: str) -> None:
    """``name``'s state dict, in PaddleClas's names and layout, is PaddleClas's key dump
    ``KEYS_DIR/<dump>.txt``: the same names in the same order, the same shapes. Skipped (a
    failure under CI) where the dumps are not present."""
    from tests.conftest import unavailable

    path = KEYS_DIR / f"{dump}.txt"
    if not path.is_file():
        unavailable(f"{path} not present (reference key dumps live outside the repo)")
    expected = read_key_file(path)
    got = paddle_style_shapes(meta_model(name))
    assert list(got) == list(expected)  # same names in the same order
    assert got == expected
