"""The engine end to end on a few real CIFAR-10 images: train, evaluate, export -> load,
unreadable images, NaN loss, resume after SIGKILL, DDP with 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from tests.distill.conftest import TINY_ARCH, read_state, tiny_recipe, write_recipe

REPO = Path(__file__).resolve().parents[2]


EMA_HOOKS = [
    dict(type="EpochSeedHook"),
    dict(type="SafeCheckpointHook"),
    dict(type="HistoryHook"),
    dict(type="TeacherOnceHook"),
    dict(type="ModuleEMAHook", momentum=0.5, begin_iter=0, module="student"),
]


def test_distill_trains_evaluates_and_exports_a_loadable_student(tiny_tree, tmp_path):
    from ssld_zoo.distill.runner import run_distill

    recipe = tiny_recipe(tiny_tree)
    res = run_distill(recipe, tmp_path / "wd", log_level="WARNING")
    # metrics of the student each epoch, of the teacher once
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert all(0 <= h["top1"] <= 100 and h["top1"] <= h["top5"] for h in res.history)
    assert set(res.teacher_metrics) == {"top1", "top5"}
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in res.history)
    assert (tmp_path / "wd" / "epoch_2.pth").is_file()
    # export: safetensors + card; loads through the public API with the card attached
    path = res.export_path
    assert path.suffix == ".safetensors" and path.is_file()
    card = json.loads(path.with_suffix(".safetensors.json").read_text())
    assert card["arch"] == TINY_ARCH and card["teacher"] == TINY_ARCH
    assert card["top1"] == pytest.approx(res.metrics["top1"])
    assert card["transform"]["input_size"] == 32
    assert card["training"]["data"]["num_labeled"] == 30
    import ssld_zoo

    model = ssld_zoo.load(TINY_ARCH, weights=str(path))  # 10 classes, from the card
    assert model.weight_card.name == card["name"]
    assert model.weight_card.transform.input_size == 32
    saved = read_state(path)
    for k, v in model.state_dict().items():
        if k in saved:
            assert torch.equal(v, saved[k]), k
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_export_loads_through_the_public_api(tmp_path):
    """A 1000-class export (what the paper recipes produce) -> ssld_zoo.load(arch, weights=)."""
    import ssld_zoo
    from ssld_zoo.registry import EvalTransform, WeightCard
    from ssld_zoo.weights.export import export_with_card

    src = ssld_zoo.load(TINY_ARCH, pretrained=False)
    path = export_with_card(
        src.state_dict(),
        tmp_path / "mine.safetensors",
        WeightCard(
            name="mine_ssld",
            arch=TINY_ARCH,
            urls=("mine.safetensors",),
            num_classes=1000,
            top1=12.5,
            top1_source="test",
            teacher="resnet50_vd_ssld",
            description="a test export",
            transform=EvalTransform(
                224, 256, "bilinear", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
            ),
        ),
    )
    model = ssld_zoo.load(TINY_ARCH, weights=path)
    card = model.weight_card
    assert (card.name, card.arch, card.top1, card.teacher) == (
        "mine_ssld",
        TINY_ARCH,
        12.5,
        "resnet50_vd_ssld",
    )
    assert card.transform.mean == (0.5, 0.5, 0.5)
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_unreadable_image_is_skipped_and_counted(tiny_tree, tmp_path, caplog):
    from ssld_zoo.distill.runner import run_distill

    recipe = tiny_recipe(tiny_tree, no_val=True, **{"train_cfg.max_epochs": 1})
    with caplog.at_level("WARNING", logger="ssld_zoo.data"):
        res = run_distill(recipe, tmp_path / "wd", log_level="WARNING", export=False)
    assert "zz_broken.jpg" in caplog.text
    assert res.history and torch.isfinite(torch.tensor(res.history[0]["loss"]))


def test_nan_loss_stops_before_the_step_and_keeps_the_checkpoint(tiny_tree, tmp_path):
    from mmengine.registry import MODELS

    from ssld_zoo.distill.losses import LOSSES, register_loss
    from ssld_zoo.distill.runner import build_runner
    from ssld_zoo.engine.preprocessor import NonFiniteLossError

    @register_loss
    class NaNOnCall(nn.Module):  # finite for the first epoch (5 steps), NaN afterwards
        calls = 0

        def forward(self, s, t, labels=None):
            NaNOnCall.calls += 1
            loss = ((s - t) ** 2).mean()
            return loss * float("nan") if NaNOnCall.calls > 5 else loss

    try:
        recipe = tiny_recipe(tiny_tree, no_val=True, **{"model.loss.type": "NaNOnCall"})
        runner = build_runner(recipe, tmp_path / "wd", log_level="WARNING")
        with pytest.raises(NonFiniteLossError, match="nan.*checkpoints written so far are intact"):
            runner.train()
        student = runner.model.student.state_dict()
        assert all(torch.isfinite(v).all() for v in student.values() if v.is_floating_point())
        ckpt = torch.load(tmp_path / "wd" / "epoch_1.pth", weights_only=True)
        assert all(
            torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
        )
        assert not (tmp_path / "wd" / "epoch_2.pth").exists()
    finally:
        LOSSES.pop("NaNOnCall", None)
        MODELS.module_dict.pop("NaNOnCall", None)  # module_dict is the registry's own dict


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ssld_zoo.cli.main", *args]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return env


def test_resume_after_sigkill_reaches_the_same_weights(tiny_tree, tmp_path):
    recipe = write_recipe(
        tmp_path / "tiny_resume.py",
        tiny_recipe(tiny_tree, no_val=True, **{"train_cfg.max_epochs": 3}),
    )
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(
        _cli("distill", str(recipe), "--work-dir", str(ref), "--no-progress"),
        check=True,
        env=_env(),
        capture_output=True,
        timeout=600,
    )
    proc = subprocess.Popen(
        _cli("distill", str(recipe), "--work-dir", str(killed), "--no-progress"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        last = killed / "last_checkpoint"
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if last.is_file() and "epoch_1.pth" in last.read_text():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert not list(killed.glob(f"{TINY_ARCH}_*.safetensors")), "killed run must not export"
    subprocess.run(
        _cli("distill", str(recipe), "--work-dir", str(killed), "--resume", "--no-progress"),
        check=True,
        env=_env(),
        capture_output=True,
        timeout=600,
    )
    a = read_state(next(ref.glob("*.safetensors")))
    b = read_state(next(killed.glob("*.safetensors")))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_ddp_two_cpu_processes_match_one_process(tiny_tree, tmp_path):
    # Student BatchNorm frozen: per-process batch statistics (no SyncBN on CPU) would
    # otherwise legitimately differ from one process's; everything else must match.
    r = tiny_recipe(
        tiny_tree,
        no_val=True,
        **{"model.student.bn_mode": "eval", "train_dataloader.dataset.unlabeled_roots": []},
    )
    recipe = write_recipe(tmp_path / "tiny_ddp.py", r)
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        _cli("distill", str(recipe), "--work-dir", str(one), "--no-progress"),
        check=True,
        env=_env(),
        capture_output=True,
        timeout=600,
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "ssld_zoo.cli.main",
            "distill",
            str(recipe),
            "--work-dir",
            str(two),
            "--launcher",
            "pytorch",
            "--no-progress",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    a = read_state(next(one.glob("*.safetensors")))
    b = read_state(next(two.glob("*.safetensors")))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_runtime_options_channels_last_ema_compile_train_bn_randaugment(tiny_tree, tmp_path):
    """The GPU-oriented options run on CPU too: channels_last, EMA export, torch.compile of the
    train step (dynamo's eager backend: graph capture without a C++ build), a train-mode-BN
    teacher, and RandAugment."""
    from safetensors.torch import load_file

    from ssld_zoo.distill.runner import DistillResult, build_runner, export_from_runner
    from ssld_zoo.engine.checkpoint import mmengine_safe_globals
    from ssld_zoo.engine.hooks import HistoryHook, find_hook

    recipe = tiny_recipe(
        tiny_tree,
        **{
            "train_cfg.max_epochs": 1,
            "model.teacher.bn_mode": "train",
            "train_dataloader.dataset.transform.auto_augment": "rand-m7-n2",
            "model.data_preprocessor.channels_last": True,
            "custom_hooks": EMA_HOOKS,
            "compile": dict(_delete_=True, backend="eager"),
        },
    )
    runner = build_runner(recipe, tmp_path / "wd", log_level="WARNING")
    teacher = runner.model.teacher
    t_weights = {k: v.detach().clone() for k, v in teacher.named_parameters()}
    t_mean = {k: v.clone() for k, v in teacher.state_dict().items() if "running_mean" in k}
    runner.train()
    assert hasattr(runner.model.train_step, "_torchdynamo_orig_callable")  # compiled
    for name, p in runner.model.student.named_parameters():
        if p.ndim == 4:
            assert p.is_contiguous(memory_format=torch.channels_last), name
    after = teacher.state_dict()
    assert all(torch.equal(after[k], v) for k, v in t_weights.items())  # frozen ...
    assert any(not torch.equal(after[k], v) for k, v in t_mean.items())  # ... batch-stat BN
    # Export writes the EMA weights, which the checkpoint also holds; they differ from the
    # raw student's (momentum 0.5 after several steps).
    res = DistillResult(tmp_path / "wd", None, {}, {}, find_hook(runner, HistoryHook).history)
    exported = load_file(str(export_from_runner(runner, recipe, res)))
    with mmengine_safe_globals():
        ckpt = torch.load(tmp_path / "wd" / "epoch_1.pth", weights_only=True)
    ema = ckpt["ema_student"]
    student = {
        k[len("student.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("student.")
    }
    assert exported.keys() == ema.keys()
    assert all(torch.equal(exported[k], ema[k].contiguous()) for k in ema)
    assert any(not torch.equal(ema[k], student[k]) for k in ema if "running" not in k)
    card = json.loads(next((tmp_path / "wd").glob("*.safetensors.json")).read_text())
    assert card["training"]["ema"] is True
