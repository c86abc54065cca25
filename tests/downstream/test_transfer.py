"""``ssld-zoo transfer``: fine-tuning on a real image folder (a tiny CIFAR-10 subset)."""
from __future__ import annotations

import json

import pytest
import torch

import ssld_zoo
from ssld_zoo.adapters.transfer import TransferConfig, finetune
from ssld_zoo.cli.main import main

TINY = dict(epochs=1, batch_size=8, image_size=32, max_train_per_class=2, max_val_per_class=2)


def test_finetune_from_a_weights_file_reports_top1(test_data, tmp_path):
    src = ssld_zoo.load("resnet18_vd", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    seen = []
    res = finetune("resnet18_vd", test_data / "cifar10", weights=str(tmp_path / "r18.pth"),
                   cfg=TransferConfig(**TINY), progress=seen.append)
    assert res.num_classes == 10 and res.train_images == 20 and res.val_images == 20
    assert 0.0 <= res.top1 <= 100.0 and len(seen) == 1 == len(res.epochs)
    assert res.stage_lr_mult == (0.1, 0.1, 0.2, 0.2, 0.3)
    assert res.weights == str(tmp_path / "r18.pth")


def test_cli_json(test_data, capsys):
    rc = main(["transfer", "resnet18_vd", "--data", str(test_data / "cifar10"), "--weights",
               "none", "--epochs", "1", "--batch-size", "8", "--image-size", "32",
               "--max-train-per-class", "1", "--max-val-per-class", "1",
               "--stage-lr-mult", "1,1,1,1,1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["weights"] is None and out["stage_lr_mult"] == [1, 1, 1, 1, 1]
    assert out["val_images"] == 10 and 0 <= out["top1"] <= 100


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["transfer", "resnet18_vd", "--data", str(tmp_path), "--weights", "none"]) == 1
    flat = "".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "".join(f"{tmp_path / 'train'} does not exist".split()) in flat
    assert main(["transfer", "resnet50_vdd", "--data", str(tmp_path)]) == 1
    assert "resnet50_vd" in capsys.readouterr().err
    assert main(["transfer", "resnet18_vd", "--data", str(tmp_path)]) == 1  # weights='ssld'
    assert "has no SSLD weights" in " ".join(capsys.readouterr().err.split())


def test_bad_stage_multiplier_count(test_data):
    with pytest.raises(ValueError, match="needs 5 values"):
        finetune("resnet18_vd", test_data / "cifar10", weights=None,
                 cfg=TransferConfig(**TINY, stage_lr_mult=(0.1, 0.2)))
