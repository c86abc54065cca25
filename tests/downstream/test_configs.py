"""Every shipped downstream config loads, builds and runs one forward pass (random weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

DOWNSTREAM = Path(__file__).resolve().parents[2] / "downstream"

DET_CONFIGS = sorted((DOWNSTREAM / "mmdet").glob("*.py"))
SEG_CONFIGS = sorted((DOWNSTREAM / "mmseg").glob("*.py"))


def _load(path: Path):
    from mmengine.config import Config

    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.type == "SSLDBackbone"
    assert "ssld_zoo.adapters.mmlab" in cfg.custom_imports["imports"]
    # The weights each config asks for: SSLD ones unless it is a baseline twin.
    from ssld_zoo.adapters.resolve import resolve_weights

    want = resolve_weights(cfg.model.backbone.model, cfg.model.backbone.weights)
    assert want.endswith("_ssld") == ("-ssld" in path.name), (path.name, want)
    cfg.model.backbone.weights = None  # no download in tests
    return cfg


def test_every_ssld_config_has_a_baseline_twin():
    names = {p.name for p in DET_CONFIGS + SEG_CONFIGS}
    ssld = [n for n in names if "-ssld" in n]
    assert len(ssld) >= 12
    assert all(n.replace("-ssld", "") in names for n in ssld), names


@pytest.mark.parametrize("path", DET_CONFIGS, ids=lambda p: p.name)
def test_mmdet_config_builds_and_predicts(path, mmdet):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample

    cfg = _load(path)
    model = MODELS.build(cfg.model).eval()
    img = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    meta = dict(
        img_id=0,
        img_path="x.jpg",
        ori_shape=(96, 128),
        img_shape=(96, 128),
        scale_factor=(1.0, 1.0),
    )
    with torch.no_grad():
        out = model.test_step(dict(inputs=[img], data_samples=[DetDataSample(metainfo=meta)]))
    assert out[0].pred_instances.bboxes.shape[-1] == 4


@pytest.mark.parametrize("path", SEG_CONFIGS, ids=lambda p: p.name)
def test_mmseg_config_builds_and_predicts(path, mmseg):
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = _load(path)
    cfg.model.data_preprocessor.size = (64, 64)  # not the 512x1024 training crop: a CPU test
    cfg.model.test_cfg = dict(mode="whole")
    model = MODELS.build(cfg.model).eval()
    img = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    meta = dict(img_path="x.jpg", ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))
    with torch.no_grad():
        out = model.test_step(dict(inputs=[img], data_samples=[SegDataSample(metainfo=meta)]))
    assert out[0].pred_sem_seg.data.shape[-2:] == (64, 64)
    assert int(out[0].pred_sem_seg.data.max()) < cfg.model.decode_head.num_classes
