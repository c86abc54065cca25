"""Checkpoints that survive SIGKILL at any moment, resuming, and bad recipes and CLI arguments.

The kill tests run the real ``ssld-zoo distill`` in subprocesses on the tiny CIFAR-10 tree
(32 px, 2-3 steps an epoch): ``tests/distill/_kill_points.py`` stops a run inside a checkpoint
write (torn temp file, renamed but not yet recorded, ``last_checkpoint`` torn or written but
the superseded file not yet removed), the test SIGKILLs it there or at a random moment, checks
that a complete checkpoint is left, resumes, and at the end compares the exported weights with
an uninterrupted run.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.distill.conftest import TINY_ARCH, read_state, tiny_recipe, write_recipe

REPO = Path(__file__).resolve().parents[2]
KILL_POINTS = Path(__file__).with_name("_kill_points.py")


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def _distill(recipe: Path, work_dir: Path, *extra: str) -> list[str]:
    return ["distill", str(recipe), "--work-dir", str(work_dir), "--no-progress", *extra]


def _run_until_killed(
    args: list[str], stage: str, n: int, ready: Path, kill_after: float | None = None
) -> str:
    """Start ``args`` under the kill points, SIGKILL it at the n-th ``stage`` (or after
    ``kill_after`` seconds); returns how it ended."""
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, str(KILL_POINTS), stage, str(n), str(ready), *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    start = time.time()
    try:
        while proc.poll() is None and time.time() - start < 300:
            if ready.exists() or (kill_after is not None and time.time() - start > kill_after):
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
                return "killed"
            time.sleep(0.02)
        assert proc.returncode == 0, proc.stderr.read().decode()[-3000:]
        return "finished"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stderr.close()


def _assert_resumable(work_dir: Path) -> Path:
    """A complete training checkpoint is what --resume would use, and no temp file is used."""
    from ssld_zoo.engine.checkpoint import find_resume_checkpoint, read_checkpoint

    ckpt = find_resume_checkpoint(work_dir)
    assert ckpt is not None, sorted(p.name for p in work_dir.iterdir())
    assert ckpt.parent == work_dir and ckpt.name.startswith("epoch_")
    read_checkpoint(ckpt)  # loads (weights_only) and is a training checkpoint
    return ckpt


@pytest.fixture
def kill_recipe(tiny_tree, tmp_path) -> Path:
    # 3 epochs, one checkpoint kept: the case where mmengine alone could lose every checkpoint.
    return write_recipe(
        tmp_path / "tiny_kill.py",
        tiny_recipe(
            tiny_tree,
            no_val=True,
            **{"train_cfg.max_epochs": 3, "default_hooks.checkpoint.max_keep_ckpts": 1},
        ),
    )


def test_sigkill_inside_checkpoint_writes_and_at_random_then_resume_matches(kill_recipe, tmp_path):
    ref, wd, ready = tmp_path / "ref", tmp_path / "killed", tmp_path / "ready"
    reference = subprocess.Popen(
        [sys.executable, "-m", "ssld_zoo.cli.main", *_distill(kill_recipe, ref)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # 1. killed while epoch_1.pth is half written: there is no checkpoint yet, so --resume is
    # an error and --resume --allow-fresh starts from scratch.
    assert _run_until_killed(_distill(kill_recipe, wd), "ckpt_torn", 1, ready) == "killed"
    assert not list(wd.glob("epoch_*.pth")) and not (wd / "last_checkpoint").exists()
    # 2. epoch_2.pth half written: epoch_1.pth intact and recorded.
    assert (
        _run_until_killed(
            _distill(kill_recipe, wd, "--resume", "--allow-fresh"), "ckpt_torn", 2, ready
        )
        == "killed"
    )
    assert _assert_resumable(wd).name == "epoch_1.pth"
    # 3. epoch_2.pth complete but last_checkpoint still names epoch_1.pth (and it still exists).
    assert (
        _run_until_killed(_distill(kill_recipe, wd, "--resume"), "ckpt_renamed", 1, ready)
        == "killed"
    )
    assert _assert_resumable(wd).name == "epoch_1.pth" and (wd / "epoch_2.pth").is_file()
    # 4. last_checkpoint updated to epoch_2.pth, the superseded epoch_1.pth not yet removed.
    assert (
        _run_until_killed(_distill(kill_recipe, wd, "--resume"), "last_written", 1, ready)
        == "killed"
    )
    assert _assert_resumable(wd).name == "epoch_2.pth" and (wd / "epoch_1.pth").is_file()
    assert (wd / "last_checkpoint").read_text().strip() == "epoch_2.pth"  # relative
    # 5. last_checkpoint torn while it moves to epoch_3.pth: it still names epoch_2.pth; and the
    # resumed run has removed epoch_1.pth, which the run killed in 4 had left behind.
    assert (
        _run_until_killed(_distill(kill_recipe, wd, "--resume"), "last_torn", 1, ready) == "killed"
    )
    assert not (wd / "epoch_1.pth").exists()
    assert _assert_resumable(wd).name == "epoch_2.pth" and (wd / "epoch_3.pth").is_file()
    # 6. killed at random moments (some during start-up, some in training or saving).
    rng = random.Random(13)
    for _ in range(2):
        if (
            _run_until_killed(
                _distill(kill_recipe, wd, "--resume"),
                "none",
                1,
                ready,
                kill_after=rng.uniform(0.5, 8.0),
            )
            == "killed"
        ):
            _assert_resumable(wd)
    # 7. the last resume runs to the end and exports the same weights as the uninterrupted run.
    assert _run_until_killed(_distill(kill_recipe, wd, "--resume"), "none", 1, ready) == "finished"
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()[-3000:]
    reference.stderr.close()
    assert [p.name for p in wd.glob("epoch_*.pth")] == ["epoch_3.pth"]
    assert not list(wd.glob(".*tmp"))
    a = read_state(next(ref.glob(f"{TINY_ARCH}_*.safetensors")))
    b = read_state(next(wd.glob(f"{TINY_ARCH}_*.safetensors")))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def _fake_checkpoint(path: Path, epoch: int) -> Path:
    torch.save({"meta": {"epoch": epoch, "iter": epoch}, "state_dict": {}, "message_hub": {}}, path)
    return path


def test_find_resume_checkpoint_reads_relative_absolute_and_damaged_pointers(tmp_path, caplog):
    from ssld_zoo.engine.checkpoint import find_resume_checkpoint

    wd = tmp_path / "wd"
    wd.mkdir()
    assert find_resume_checkpoint(wd) is None
    _fake_checkpoint(wd / "epoch_1.pth", 1)
    _fake_checkpoint(wd / "epoch_2.pth", 2)
    (wd / "epoch_10.pth").write_bytes(b"half a zip")  # incomplete: never chosen
    last = wd / "last_checkpoint"
    last.write_text("epoch_1.pth\n")  # relative (what ssld-zoo writes)
    assert find_resume_checkpoint(wd) == wd / "epoch_1.pth"
    # mmengine's absolute form, from the folder this one was copied from: taken by file name.
    last.write_text(str(tmp_path / "elsewhere" / "epoch_1.pth"))
    assert find_resume_checkpoint(wd) == wd / "epoch_1.pth"
    for text in ("", "epoch_7.pth", "epoch_10.pth"):  # empty, missing, incomplete
        last.write_text(text)
        with caplog.at_level("WARNING", logger="ssld_zoo.distill"):
            assert find_resume_checkpoint(wd) == wd / "epoch_2.pth"
        assert "resuming from" in caplog.text and "epoch_2.pth" in caplog.text
        caplog.clear()
    last.unlink()
    assert find_resume_checkpoint(wd) == wd / "epoch_2.pth"


def test_copied_work_dir_resumes_from_its_own_checkpoints(tiny_tree, tmp_path):
    from ssld_zoo.distill.runner import run_distill
    from ssld_zoo.engine.checkpoint import read_checkpoint

    recipe = tiny_recipe(
        tiny_tree,
        no_val=True,
        **{"train_cfg.max_epochs": 1, "default_hooks.checkpoint.max_keep_ckpts": 1},
    )
    first = tmp_path / "first"
    run_distill(recipe, first, log_level="WARNING", export=False)
    assert (first / "last_checkpoint").read_text().strip() == "epoch_1.pth"
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    shutil.rmtree(first)  # the original is gone: the copy must not need it
    longer = tiny_recipe(
        tiny_tree,
        no_val=True,
        **{"train_cfg.max_epochs": 2, "default_hooks.checkpoint.max_keep_ckpts": 1},
    )
    run_distill(longer, copy, resume=True, log_level="WARNING", export=False)
    assert sorted(p.name for p in copy.glob("epoch_*.pth")) == ["epoch_2.pth"]
    assert (copy / "last_checkpoint").read_text().strip() == "epoch_2.pth"
    assert read_checkpoint(copy / "epoch_2.pth")["meta"]["epoch"] == 2
    assert not first.exists()


def test_resume_without_a_checkpoint_is_an_error_unless_allow_fresh(kill_recipe, tmp_path, capsys):
    from ssld_zoo.cli.main import main

    wd = tmp_path / "empty"
    assert main(_distill(kill_recipe, wd, "--resume", "--no-export")) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and (
            f"error: --resume: no checkpoint to resume from in {wd} (no last_checkpoint, no "
            f"complete epoch_N.pth); check --work-dir, or add --allow-fresh to start from scratch "
            f"when there is none"
        )
        in err
    )
    assert not list(wd.glob("epoch_*.pth"))
    assert main(_distill(kill_recipe, wd, "--allow-fresh", "--no-export")) == 1
    assert "error: --allow-fresh goes with a bare --resume" in capsys.readouterr().err
    assert (
        main(
            _distill(
                kill_recipe,
                wd,
                "--resume",
                "--allow-fresh",
                "--no-export",
                "--cfg-options",
                "train_cfg.max_epochs=1",
            )
        )
        == 0
    )
    assert (wd / "epoch_1.pth").is_file()


class Obj:
    """Something a checkpoint must not hold."""


def _not_checkpoints(tmp: Path) -> list[tuple[Path, type, str]]:
    text = tmp / "notes.txt"
    text.write_text("hello\n")
    objects = tmp / "objects.pth"
    torch.save({"x": Obj()}, objects)
    whole = _fake_checkpoint(tmp / "whole.pth", 1).read_bytes()
    truncated = tmp / "truncated.pth"
    truncated.write_bytes(whole[: len(whole) // 2])
    weights = tmp / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    not_zip = (
        "not a checkpoint (not a torch zip file: truncated, or another format); resume "
        "from an epoch_N.pth of a work folder"
    )
    return [
        (text, ValueError, f"{text}: {not_zip}"),
        (truncated, ValueError, f"{truncated}: {not_zip}"),
        (
            objects,
            ValueError,
            f"{objects}: not a checkpoint of ssld-zoo distill: it holds Python "
            f"objects ({Obj.__module__}.Obj) beyond tensors and plain values, "
            f"and is not loaded (loading them could run code)",
        ),
        (
            weights,
            ValueError,
            f"{weights}: not a training checkpoint of ssld-zoo distill (no "
            f"meta, state_dict, message_hub); a weights file is not "
            f"resumable: resume from an epoch_N.pth of a work folder",
        ),
        (
            tmp / "missing.pth",
            FileNotFoundError,
            f"checkpoint {tmp / 'missing.pth'} does not exist",
        ),
    ]


def test_read_checkpoint_refuses_what_is_not_a_training_checkpoint(tmp_path):
    from ssld_zoo.engine.checkpoint import CheckpointError, read_checkpoint

    for path, error, message in _not_checkpoints(tmp_path):
        with pytest.raises(error) as e:
            read_checkpoint(path)
        assert str(e.value) == message
        assert "weights_only" not in str(e.value) and "\n" not in str(e.value)
        if error is ValueError:
            assert isinstance(e.value, CheckpointError)


def test_distill_resume_on_a_file_that_is_not_a_checkpoint_is_one_line(
    kill_recipe, tmp_path, capsys
):
    from ssld_zoo.cli.main import main

    for path, error, message in _not_checkpoints(tmp_path):
        if error is FileNotFoundError:
            message = f"--resume {path}: no such checkpoint file"
        assert (
            main(_distill(kill_recipe, tmp_path / "wd", "--resume", str(path), "--no-export")) == 1
        )
        err = capsys.readouterr().err
        assert err == f"error: {message}\n", err


def test_pickled_objects_never_run_on_resume(tmp_path):
    from ssld_zoo.engine.checkpoint import CheckpointError, read_checkpoint

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pth"
    torch.save({"meta": {"epoch": 1, "iter": 1}, "state_dict": {}, "message_hub": Evil()}, path)
    with pytest.raises(CheckpointError, match="holds Python objects"):
        read_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # what torch itself says: no code ran either
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_atomic_backend_defers_removals_and_keeps_old_content_on_failure(tmp_path):
    from ssld_zoo.engine.checkpoint import AtomicLocalBackend, atomic_write_bytes

    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, 12345)  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    backend = AtomicLocalBackend()
    with backend.deferred_removals():
        backend.remove(target)
        assert target.exists()  # not yet: the file replacing it is not written
    assert not target.exists()
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with backend.deferred_removals():
            backend.remove(target)
            raise RuntimeError("the new checkpoint failed")
    assert target.read_bytes() == b"old"  # kept: nothing replaced it


def test_batches_without_enough_readable_images_are_skipped_and_counted(cifar10, tmp_path):
    from ssld_zoo.distill.runner import build_runner

    pool = tmp_path / "pool"
    pool.mkdir()
    for f in sorted(os.listdir(cifar10 / "unlabeled"))[:2]:
        (pool / f).symlink_to(cifar10 / "unlabeled" / f)
    for i in range(6):
        (pool / f"broken_{i}.jpg").write_bytes(b"not a jpeg")
    from ssld_zoo.engine.hooks import HistoryHook, find_hook

    tree = {"train": "", "val": "", "unlabeled": pool}
    recipe = tiny_recipe(
        tree,
        no_val=True,
        **{
            "train_dataloader.dataset.labeled_roots": [],
            "train_dataloader.batch_size": 2,
            "train_cfg.max_epochs": 2,
        },
    )
    runner = build_runner(recipe, tmp_path / "wd", log_level="WARNING")
    history = find_hook(runner, HistoryHook)
    before = {k: v.clone() for k, v in runner.model.student.state_dict().items()}
    runner.train()  # was: NaN loss, "lower the learning rate"
    model = runner.model
    # 8 images, batch 2, 2 epochs: 8 steps, each with at least one broken file; with train-mode
    # BatchNorm a step needs 2 readable images, which no batch here has.
    assert model.skipped_batches == 8 and model.skipped_images == 12
    assert runner.iter == 8 and [h["epoch"] for h in history.history] == [1, 2]
    for k, v in model.student.state_dict().items():  # no step was taken
        assert torch.equal(v, before[k]), k


def test_partly_unreadable_batches_still_train(tiny_tree, tmp_path):
    from ssld_zoo.distill.runner import run_distill

    recipe = tiny_recipe(tiny_tree, no_val=True, **{"train_cfg.max_epochs": 1})
    res = run_distill(recipe, tmp_path / "wd", log_level="WARNING", export=False)
    assert torch.isfinite(torch.tensor(res.history[0]["loss"]))


OPT = "optim_wrapper.optimizer"
BAD_RECIPES = [
    (
        {f"{OPT}.type": "SGDD"},
        f"{OPT}.type='SGDD' is not a registered optimizer name; expected one of: ASGD, ",
    ),
    ({f"{OPT}.lr": "0.1"}, f"{OPT}.lr='0.1': expected a number"),
    (
        {f"{OPT}.momentun": 0.9},
        f"unknown key(s) {OPT}.momentun for SGD; valid: lr, momentum, dampening, weight_decay, "
        f"nesterov, ",
    ),
    (
        {OPT: dict(type="AdamW", lr=0.1, betas=0.9, _delete_=True)},
        f"{OPT}.betas=0.9: expected 2 numbers",
    ),
    ({f"{OPT}.nesterov": "yes"}, f"{OPT}.nesterov='yes': expected True or False"),
    (
        {"model.student.num_classes": "10"},
        "model.student.num_classes='10': expected an integer or None",
    ),
    (
        {"model.teacher.num_classes": 10.0},
        "model.teacher.num_classes=10.0: expected an integer or None",
    ),
    (
        {"model.student.num_classes": True},
        "model.student.num_classes=True: expected an integer or None",
    ),
    (
        {"train_dataloader.batch_size": "8"},
        "train_dataloader.batch_size='8': expected an integer >= 1",
    ),
    ({"train_dataloader.batch_size": 0}, "train_dataloader.batch_size=0: expected an integer >= 1"),
    (
        {"train_dataloader.dataset.transform.hflip": "2"},
        "train_dataloader.dataset.transform.hflip='2': expected a number",
    ),
    (
        {"train_dataloader.dataset.transform.scale": 0.5},
        "train_dataloader.dataset.transform.scale=0.5: expected 2 numbers",
    ),
    ({"train_cfg.max_epochs": "2"}, "train_cfg.max_epochs='2': expected an integer"),
    (
        {"model.loss": dict(type="KL", temperature="4")},
        "model.loss.temperature='4': expected a number",
    ),
    ({"model.loss_weight": "1"}, "model.loss_weight='1': expected a number"),
    (
        {"default_hooks.checkpoint.max_keep_ckpts": 1.5},
        "default_hooks.checkpoint.max_keep_ckpts=1.5: expected an integer",
    ),
]


@pytest.mark.parametrize("options,message", BAD_RECIPES, ids=[m[:40] for _, m in BAD_RECIPES])
def test_bad_recipe_values_are_one_line_errors(tiny_tree, tmp_path, options, message):
    from ssld_zoo.distill.recipes import RecipeError

    with pytest.raises(RecipeError) as e:
        tiny_recipe(tiny_tree, folder=tmp_path, **options)
    assert str(e.value).startswith(f"{tmp_path / 'tiny.py'}: {message}") and "\n" not in str(
        e.value
    ), str(e.value)


def test_recipe_errors_from_the_cli_name_the_file_and_key(kill_recipe, tmp_path, capsys):
    from ssld_zoo.cli.main import main

    wd = tmp_path / "wd"
    for options, message in (
        ([f"{OPT}.type=SGDD"], f"{OPT}.type='SGDD' is not a registered optimizer name"),
        ([f"{OPT}.lr=fast"], f"{OPT}.lr='fast': expected a number"),
        (["model.student.num_classes=ten"], "model.student.num_classes='ten': expected"),
    ):
        assert main(_distill(kill_recipe, wd, "--no-export", "--cfg-options", *options)) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {kill_recipe}: {message}") and err.count("\n") == 1, err
    assert not wd.exists()


def test_batch_larger_than_the_training_set_is_one_line(tiny_tree, tmp_path):
    from ssld_zoo.distill.runner import build_runner

    recipe = tiny_recipe(
        tiny_tree,
        no_val=True,
        **{"train_dataloader.batch_size": 64, "train_dataloader.dataset.unlabeled_roots": []},
    )
    with pytest.raises(ValueError) as e:
        build_runner(recipe, tmp_path / "wd", log_level="WARNING")
    assert str(e.value) == (
        "train_dataloader.batch_size=64 is larger than the training set: "
        "64 images a step but 30 training images, so an epoch would have "
        "no complete batch; set it to at most 30"
    )


def test_out_of_range_out_indices_is_an_error():
    import ssld_zoo

    with pytest.raises(ValueError, match="out_indices"):
        ssld_zoo.load(TINY_ARCH, pretrained=False, features_only=True, out_indices=(9,))
