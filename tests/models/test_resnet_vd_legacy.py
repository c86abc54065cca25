"""PaddleClas 2.0/2.1 ResNet_vd files (the SSLD docs' old links) load into the 2.6 layout."""

import re

import pytest
import torch

import ssld_zoo
from ssld_zoo.weights.convert import torch_to_paddle
from ssld_zoo.weights.pdparams import write_pdparams


def _to_legacy(paddle_state: dict, counts: tuple[int, ...]) -> dict:
    """Rename 2.6 keys to the 2.1 names (written independently of the loader's mapping)."""
    starts = [sum(counts[:s]) for s in range(len(counts))]
    out = {}
    for key, value in paddle_state.items():
        if key.startswith("stem."):
            k = int(key.split(".")[1])
            key = f"conv1_{k + 1}." + key.split(".", 2)[2]
        elif key.startswith("blocks."):
            idx = int(key.split(".")[1])
            stage = max(s for s in range(len(counts)) if starts[s] <= idx)
            key = f"bb_{stage}_{idx - starts[stage]}." + key.split(".", 2)[2]
        elif key.startswith("fc."):
            key = "out." + key[3:]
        key = re.sub(r"\.conv\.", "._conv.", key)
        key = re.sub(r"\.bn\.", "._batch_norm.", key)
        out[key] = value
    out["StructuredToParameterName@@"] = {"conv1_1._conv.weight": "conv1_1_weights"}
    return out


@pytest.mark.parametrize(
    "arch,counts", [("resnet34_vd", (3, 4, 6, 3)), ("resnet50_vd", (3, 4, 6, 3))]
)
def test_legacy_names_load(tmp_path, arch, counts):
    torch.manual_seed(0)
    src = ssld_zoo.load(arch, pretrained=False).eval()
    legacy = _to_legacy(torch_to_paddle(src), counts)
    assert "bb_3_2.conv1._batch_norm._variance" in legacy
    path = tmp_path / "old.pdparams"
    write_pdparams({k: v for k, v in legacy.items() if not k.endswith("@@")}, path)
    model = ssld_zoo.load(arch, weights=path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), rtol=0, atol=0)
