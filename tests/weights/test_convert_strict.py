"""The .pdparams converter is strict, and says precisely what does not fit.

PaddleClas's own loader ignores missing and extra keys; ``ssld_zoo.load(weights=...)`` must not.
The files are written in PaddleClas's layout (``_mean``/``_variance``, Linear stored [in, out])
from a zoo model's own tensors, so no paddle install is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import ssld_zoo
from ssld_zoo.registry import get_arch
from ssld_zoo.weights.convert import StateDictMismatch, paddle_to_torch
from ssld_zoo.weights.pdparams import read_pdparams, write_pdparams

ARCH, OTHER = "resnet18_vd", "resnet34_vd"


def paddle_state(model: nn.Module) -> dict[str, np.ndarray]:
    """A zoo model's tensors under PaddleClas's names and layouts (the converter's inverse)."""
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    out = {}
    for key, t in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        a = t.detach().numpy()
        if key in linear:
            a = a.T
        key = key.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        out[key] = np.ascontiguousarray(a)
    return out


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    model = get_arch(ARCH).builder()
    for m in model.modules():  # non-default statistics, so a wrong mapping would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return paddle_state(model)


def _write(tmp_path: Path, state: dict[str, np.ndarray], name: str = "w.pdparams") -> Path:
    path = tmp_path / name
    write_pdparams(state, path)
    return path


def _load_error(arch: str, path: Path) -> str:
    """The message of ``ssld_zoo.load(arch, weights=path)``, the user-facing path. It also
    searches the registry for the architecture the file fits (builds every architecture on the
    meta device: seconds), so the per-key cases below go through the converter directly."""
    with pytest.raises(StateDictMismatch) as err:
        ssld_zoo.load(arch, pretrained=False, weights=path)
    assert str(path) in str(err.value)
    return str(err.value)


def _convert_error(arch: str, path: Path) -> str:
    """The converter's own message for ``path`` against ``arch`` (what ``load`` starts with)."""
    with pytest.raises(StateDictMismatch) as err:
        paddle_to_torch(read_pdparams(path), get_arch(arch).builder(), str(path))
    assert str(path) in str(err.value)
    return str(err.value)


def test_exact_file_loads_every_tensor(tmp_path: Path, state) -> None:
    model = ssld_zoo.load(ARCH, pretrained=False, weights=_write(tmp_path, state))
    got = model.state_dict()
    np.testing.assert_array_equal(got["stem.0.bn.running_var"], state["stem.0.bn._variance"])
    np.testing.assert_array_equal(got["fc.weight"], state["fc.weight"].T)  # transposed back
    np.testing.assert_array_equal(
        got["blocks.7.conv1.conv.weight"], state["blocks.7.conv1.conv.weight"]
    )


def test_missing_key_is_named(tmp_path: Path, state) -> None:
    bad = {k: v for k, v in state.items() if k != "blocks.3.conv1.bn._mean"}
    msg = _convert_error(ARCH, _write(tmp_path, bad))
    assert "missing" in msg
    assert "blocks.3.conv1.bn.running_mean" in msg or "blocks.3.conv1.bn._mean" in msg


def test_extra_key_is_named(tmp_path: Path, state) -> None:
    msg = _convert_error(ARCH, _write(tmp_path, {**state, "neck.proj.weight": np.zeros((2, 2))}))
    assert "unexpected" in msg and "neck.proj.weight" in msg


def test_wrong_shape_is_named(tmp_path: Path, state) -> None:
    bad = dict(state, **{"fc.bias": np.zeros(999, np.float32)})
    msg = _convert_error(ARCH, _write(tmp_path, bad))
    assert "fc.bias" in msg and "999" in msg and "1000" in msg


def test_file_of_another_architecture_names_it(tmp_path: Path, state) -> None:
    msg = _load_error(OTHER, _write(tmp_path, state, "resnet18_vd_copy.pdparams"))
    assert "missing" in msg  # resnet34_vd has more blocks than the file
    assert repr(ARCH) in msg, msg
