"""A pip-installed ssld-zoo works as the checkout does: the wheel is built, installed (not
editable) into a fresh virtual environment, and used from an empty folder.

The fresh venv gets its dependencies (torch, mmengine, ...) from this test's own environment
through a ``.pth`` path line, so nothing is downloaded; ``ssld_zoo`` itself comes only from the
wheel (the checkout is neither on ``sys.path`` nor the working directory).
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, unavailable

# Slow tier: minutes, not seconds; `make test-fast` leaves these out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = tmp / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO_ROOT),
        ],
        check=True,
        cwd=tmp,
        capture_output=True,
    )
    (wheel,) = wheels.glob("ssld_zoo-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    own_site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Dependencies from this environment (a plain path line: its .pth files, among them the
    # checkout's editable-install finder, are not run).
    Path(own_site, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            own_site,
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    empty = tmp / "work"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SSLD_ZOO_RECIPES")}
    return {"py": py, "site": Path(own_site), "cwd": empty, "env": env}


def _run(installed: dict, *code_or_args: str) -> str:
    done = subprocess.run(
        [str(installed["py"]), *code_or_args],
        cwd=installed["cwd"],
        env=installed["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _cli(installed: dict, *args: str) -> str:
    return _run(
        installed,
        "-c",
        "import sys; from ssld_zoo.cli.main import main; sys.exit(main(sys.argv[1:]))",
        *args,
    )


def test_the_package_comes_from_the_wheel(installed):
    out = _run(installed, "-c", "import ssld_zoo; print(ssld_zoo.__file__)")
    assert Path(out.strip()).is_relative_to(installed["site"])


def test_recipes_are_listed_and_resolve_by_name(installed):
    listing = _cli(installed, "recipes")
    for name in ("r50d", "mv3_large", "cifar10/ssld"):
        assert name in listing
    where = _run(
        installed,
        "-c",
        "from ssld_zoo.distill.recipes import resolve_recipe; print(resolve_recipe('r50d'))",
    )
    assert Path(where.strip()) == installed["site"] / "ssld_zoo" / "recipes" / "r50d.py"
    shown = _cli(installed, "recipes", "r50d", "--cfg-options", "train_dataloader.batch_size=64")
    assert "valid" in shown and "batch_size=64" in shown
    assert "resnext101_32x16d_wsl" in shown  # the teacher from the recipe, through _base_


def test_a_model_loads(installed):
    out = _run(
        installed,
        "-c",
        textwrap.dedent("""
        import torch, ssld_zoo
        m = ssld_zoo.load('resnet18_vd', pretrained=False)
        print(tuple(m(torch.zeros(1, 3, 64, 64)).shape), m.pretrained_cfg['input_size'])
    """),
    )
    assert out.split() == ["(1,", "1000)", "(3,", "224,", "224)"]


def test_downstream_configs_ship_and_a_user_config_inherits_one(installed):
    paths = _cli(installed, "configs", "--path-only").split()
    assert len(paths) >= 20
    assert all(Path(p).is_relative_to(installed["site"]) for p in paths)
    assert not any("/_base_/" in p for p in paths)  # building blocks, not configs to train
    try:
        import mmdet  # noqa: F401
    except ImportError:
        unavailable("mmdet is not installed (make openmmlab)")
    user = installed["cwd"] / "my_retinanet.py"
    (base,) = [p for p in paths if p.endswith("/retinanet_r50vd-ssld_fpn_1x_coco.py")]
    user.write_text(f"_base_ = {base!r}\ntrain_dataloader = dict(batch_size=4)\n")
    out = _run(
        installed,
        "-c",
        textwrap.dedent("""
        from mmengine.config import Config
        cfg = Config.fromfile('my_retinanet.py')
        print(cfg.model.backbone.type, cfg.model.backbone.weights, cfg.train_dataloader.batch_size)
    """),
    )
    assert out.split() == ["SSLDBackbone", "ssld", "4"]
