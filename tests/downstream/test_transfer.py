"""``ssld-zoo transfer``: fine-tuning on a real image folder (a tiny CIFAR-10 subset), on the
shared engine (checkpoints, resume, EMA, export)."""

from __future__ import annotations

import json

import pytest
import torch
from mmengine.hooks import Hook
from safetensors.torch import load_file

import ssld_zoo
from ssld_zoo.adapters.transfer import TransferConfig, _warmup_epochs, finetune
from ssld_zoo.cli.main import main
from ssld_zoo.engine.checkpoint import find_resume_checkpoint, read_checkpoint
from ssld_zoo.engine.hooks import ModuleEMAHook, find_hook
from ssld_zoo.registry import EvalTransform

TINY = dict(epochs=1, batch_size=8, image_size=32, max_train_per_class=2, max_val_per_class=2)
# 20 train images, batch 8: 2 steps an epoch; warm-up over the first step; EMA that moves fast
TWO = dict(TINY, epochs=2, warmup_epochs=0.5, ema=0.5, lr=0.05, tensorboard=False)


def test_finetune_from_a_weights_file_reports_top1(test_data, tmp_path):
    src = ssld_zoo.load("resnet18_vd", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    seen = []
    res = finetune(
        "resnet18_vd",
        test_data / "cifar10",
        weights=str(tmp_path / "r18.pth"),
        cfg=TransferConfig(**TINY),
        work_dir=tmp_path / "run",
        progress=seen.append,
    )
    assert res.num_classes == 10 and res.train_images == 20 and res.val_images == 20
    assert 0.0 <= res.top1 <= 100.0 and len(seen) == 1 == len(res.epochs)
    assert res.stage_lr_mult == (0.1, 0.1, 0.2, 0.2, 0.3)
    assert res.weights == str(tmp_path / "r18.pth")
    assert set(seen[0]) == {"epoch", "train_loss", "val_top1", "seconds"}
    assert res.work_dir == tmp_path / "run" and res.export_path.is_file()


def test_cli_json(test_data, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default work dir is work_dirs/transfer/<name>
    rc = main(
        [
            "transfer",
            "resnet18_vd",
            "--data",
            str(test_data / "cifar10"),
            "--weights",
            "none",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--image-size",
            "32",
            "--max-train-per-class",
            "1",
            "--max-val-per-class",
            "1",
            "--stage-lr-mult",
            "1,1,1,1,1",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["weights"] is None and out["stage_lr_mult"] == [1, 1, 1, 1, 1]
    assert out["val_images"] == 10 and 0 <= out["top1"] <= 100
    assert out["work_dir"] == "work_dirs/transfer/resnet18_vd"
    assert (tmp_path / out["export_path"]).is_file()
    assert (tmp_path / out["work_dir"] / "epoch_1.pth").is_file()


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["transfer", "resnet18_vd", "--data", str(tmp_path), "--weights", "none"]) == 1
    flat = "".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "".join(f"{tmp_path / 'train'} does not exist".split()) in flat
    assert main(["transfer", "resnet50_vdd", "--data", str(tmp_path)]) == 1
    assert "resnet50_vd" in capsys.readouterr().err
    assert main(["transfer", "resnet18_vd", "--data", str(tmp_path)]) == 1  # weights='ssld'
    assert "has no SSLD weights" in " ".join(capsys.readouterr().err.split())
    assert (
        main(
            [
                "transfer",
                "resnet18_vd",
                "--data",
                str(tmp_path),
                "--weights",
                "none",
                "--work-dir",
                str(tmp_path / "empty"),
                "--resume",
            ]
        )
        == 1
    )
    assert "no checkpoint to resume from" in " ".join(capsys.readouterr().err.split())


def test_bad_stage_multiplier_count(test_data):
    with pytest.raises(ValueError, match="needs 5 values"):
        finetune(
            "resnet18_vd",
            test_data / "cifar10",
            weights=None,
            cfg=TransferConfig(**TINY, stage_lr_mult=(0.1, 0.2)),
        )


def test_warmup_is_whole_steps():
    # mmengine turns epochs into steps with int(epochs * steps_per_epoch)
    for steps, cfg, want in (
        (7, TransferConfig(epochs=3), 2),  # 10% of 21 steps
        (7, TransferConfig(warmup_epochs=3 / 7), 3),
        (2, TransferConfig(epochs=2), 0),
    ):
        assert int(_warmup_epochs(cfg, steps) * steps) == want


class _Capture(Hook):
    """Keeps the runner, and the optimiser's groups as training starts."""

    priority = "LOWEST"

    def before_train(self, runner) -> None:
        self.runner = runner
        self.groups = [dict(g, params=None) for g in runner.optim_wrapper.optimizer.param_groups]


class _Stop(Exception):
    pass


class _StopAfterFirstEpoch(Hook):
    priority = "LOWEST"  # after the checkpoint hook has saved epoch_1.pth

    def after_train_epoch(self, runner) -> None:
        raise _Stop


@pytest.fixture(scope="module")
def two_epochs(test_data, tmp_path_factory):
    """An uninterrupted 2-epoch run with EMA (random init, seed 0)."""
    work = tmp_path_factory.mktemp("two_epochs")
    cap = _Capture()
    res = finetune(
        "resnet18_vd",
        test_data / "cifar10",
        weights=None,
        cfg=TransferConfig(**TWO),
        work_dir=work,
        extra_hooks=[cap],
    )
    return res, cap


def test_run_writes_engine_checkpoints(two_epochs):
    res, _ = two_epochs
    assert [r["epoch"] for r in res.epochs] == [1, 2]
    for name in ("epoch_1.pth", "epoch_2.pth", "last_checkpoint"):
        assert (res.work_dir / name).is_file(), name
    assert find_resume_checkpoint(res.work_dir) == res.work_dir / "epoch_2.pth"
    ckpt = read_checkpoint(res.work_dir / "epoch_2.pth")  # weights_only-safe
    assert ckpt["meta"]["epoch"] == 2 and "ema_net" in ckpt
    assert any(k.startswith("net.") for k in ckpt["state_dict"])
    assert list(res.work_dir.glob("*/vis_data/scalars.json"))  # the engine's logging


def test_stage_lrs_reach_the_optimizer(two_epochs):
    _, cap = two_epochs
    base, mult = (
        TWO["lr"],
        dict(
            zip(
                ["stem", "stages.0", "stages.1", "stages.2", "stages.3"], (0.1, 0.1, 0.2, 0.2, 0.3)
            ),
            head=1.0,
        ),
    )
    groups = cap.groups
    assert {g["group"] for g in groups} == set(mult)
    for g in groups:
        assert g["initial_lr"] == pytest.approx(base * mult[g["group"]])
        # the warm-up scales every group alike: lr / initial_lr is the same for all
        assert g["lr"] / g["initial_lr"] == pytest.approx(groups[0]["lr"] / groups[0]["initial_lr"])
        assert g["weight_decay"] in (0.0, TransferConfig().weight_decay)
    assert groups[0]["lr"] < groups[0]["initial_lr"]  # warming up
    final = cap.runner.optim_wrapper.optimizer.param_groups
    assert all(g["group"] in mult for g in final)


def test_export_loads_through_ssld_zoo_load(two_epochs):
    res, _ = two_epochs
    model = ssld_zoo.load("resnet18_vd", weights=res.export_path, num_classes=10)
    assert model.num_classes == 10
    card = model.weight_card
    assert card.transform == EvalTransform().at_size(32) and card.arch == "resnet18_vd"
    assert card.top1 == res.top1 and card.num_classes == 10
    saved = load_file(res.export_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    side = json.loads(res.export_path.with_suffix(".safetensors.json").read_text())
    assert side["training"]["ema"] is True and side["training"]["stage_lr_mult"] == [
        0.1,
        0.1,
        0.2,
        0.2,
        0.3,
    ]


def test_ema_export_is_the_ema_weights(two_epochs):
    res, cap = two_epochs
    hook = find_hook(cap.runner, ModuleEMAHook)
    assert hook is not None and hook.module == "net"
    saved = load_file(res.export_path)
    ema = hook.state_for_export()
    assert set(saved) == set(ema)
    for k, v in ema.items():
        assert torch.equal(saved[k], v.cpu()), k
    net = cap.runner.model.net.state_dict()
    assert any(
        not torch.equal(net[k].cpu(), saved[k]) for k, _ in cap.runner.model.net.named_parameters()
    )  # the average is not the last step


def test_resume_continues_to_the_same_weights(two_epochs, test_data, tmp_path):
    full, _ = two_epochs
    data = test_data / "cifar10"
    with pytest.raises(_Stop):
        finetune(
            "resnet18_vd",
            data,
            weights=None,
            cfg=TransferConfig(**TWO),
            work_dir=tmp_path,
            extra_hooks=[_StopAfterFirstEpoch()],
        )
    assert (tmp_path / "epoch_1.pth").is_file() and not (tmp_path / "epoch_2.pth").exists()
    res = finetune(
        "resnet18_vd", data, weights=None, cfg=TransferConfig(**TWO), work_dir=tmp_path, resume=True
    )
    assert [r["epoch"] for r in res.epochs] == [2]
    a, b = load_file(full.export_path), load_file(res.export_path)
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    assert res.top1 == full.top1
