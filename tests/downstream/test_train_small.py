"""Real training + evaluation on small real data (coco_mini, CamVid) on a CPU, and `mim train`.

Weights are random (no download in tests): the metrics are real CocoMetric/IoUMetric numbers of
an untrained backbone, which checks the whole pipeline, not accuracy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Slow tier: minutes, not seconds; `make test-fast` leaves these out.
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DOWNSTREAM = REPO_ROOT / "downstream"

COCO_MINI = DOWNSTREAM / "mmdet" / "faster-rcnn_r50vd-ssld_fpn_1x_coco-mini.py"
CAMVID = DOWNSTREAM / "mmseg" / "deeplabv3plus_r50vd-ssld-d8_1xb4-1k_camvid-256x256.py"


def _cfg(path: Path, data: Path, work_dir: Path):
    from mmengine.config import Config

    os.environ["SSLD_ZOO_TEST_DATA"] = str(data)  # read by the config's {{$...}} data root
    try:
        cfg = Config.fromfile(str(path))
    finally:
        del os.environ["SSLD_ZOO_TEST_DATA"]
    assert cfg.data_root.startswith(str(data))
    cfg.model.backbone.weights = None
    cfg.work_dir = str(work_dir)
    cfg.log_level = "ERROR"
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10**6)
    cfg.visualizer.vis_backends = [dict(type="LocalVisBackend")]
    return cfg


def test_coco_mini_faster_rcnn_trains_and_evaluates(test_data, mmdet, tmp_path):
    from mmengine.runner import Runner

    cfg = _cfg(COCO_MINI, test_data, tmp_path)
    cfg.train_dataloader.dataset.indices = 4  # 2 iterations of batch 2
    cfg.val_dataloader.dataset.indices = 6  # CocoMetric on these 6 val images
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1, val_interval=1)
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # an untrained model scores below 0.05
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    metrics = runner.val_loop.run()
    print("coco_mini CocoMetric after 2 iterations from random init:", metrics)
    for key in ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_s"):
        assert 0.0 <= metrics[key] <= 1.0 or metrics[key] == -1.0, (key, metrics)


def test_camvid_deeplabv3plus_trains_and_evaluates(test_data, mmseg, tmp_path):
    from mmengine.runner import Runner

    cfg = _cfg(CAMVID, test_data, tmp_path)
    cfg.crop_size = (128, 128)
    cfg.model.data_preprocessor.size = (128, 128)
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.pipeline[3].crop_size = (128, 128)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type="PolyLR", power=0.9, begin=0, end=2, by_epoch=False)]
    cfg.val_dataloader.dataset.indices = 3
    cfg.val_dataloader.dataset.pipeline[1].scale = (240, 180)  # half size: a CPU test
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    metrics = runner.val_loop.run()
    print("CamVid IoUMetric after 2 iterations from random init:", metrics)
    assert 0.0 <= metrics["mIoU"] <= 100.0 and 0.0 <= metrics["aAcc"] <= 100.0


def test_missing_data_root_is_named(mmdet, tmp_path):
    from mmengine.runner import Runner

    missing = tmp_path / "no_such_data"
    cfg = _cfg(COCO_MINI, missing, tmp_path / "work")
    with pytest.raises(FileNotFoundError, match=str(missing)):
        Runner.from_cfg(cfg).train()


def test_mim_train_runs_mmdet_train_py(test_data, mmdet, tmp_path):
    mim = Path(sys.executable).with_name("mim")
    if not mim.exists():
        mim = shutil.which("mim")
    assert mim, "the mim command is not installed next to this Python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SSLD_ZOO_TEST_DATA"] = str(test_data)
    cmd = [
        str(mim),
        "train",
        "mmdet",
        str(COCO_MINI),
        "--gpus",
        "0",
        "--launcher",
        "none",
        "--work-dir",
        str(tmp_path),
        "--cfg-options",
        "model.backbone.weights=None",
        "train_cfg.max_epochs=1",
        "train_dataloader.batch_size=1",
        "train_dataloader.dataset.indices=2",
        "val_dataloader.dataset.indices=1",
        "default_hooks.checkpoint.interval=100",
    ]
    res = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    logs = list(tmp_path.rglob("*.log"))
    assert logs, list(tmp_path.rglob("*"))
    text = logs[0].read_text()
    assert "Epoch(train) [1][2/2]" in text and "Epoch(val) [1][1/1]" in text, text[-2000:]
