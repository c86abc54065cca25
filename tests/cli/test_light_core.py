"""The light core: ``pip install ssld-zoo`` without extras loads, lists and converts models.

Each check runs in a fresh interpreter (a module imported by an earlier test would hide an
import), some with the optional dependencies made unimportable, as in an environment where
the extras are not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

# What the extras bring (pyproject.toml: train, demo, export, det, seg).
HEAVY = ("mmengine", "sklearn", "matplotlib", "onnx", "onnxruntime", "mmcv", "mmdet", "mmseg")
# The commands of the core: each must work with none of HEAVY installed.
CORE_COMMANDS = ("list", "info", "predict", "convert", "download", "cache", "configs")

BLOCK_HEAVY = textwrap.dedent(f"""
    import importlib.abc, sys
    class _NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {HEAVY!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, _NotInstalled())
""")


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_list_and_load_import_no_extra():
    """``ssld-zoo list``, then ``ssld_zoo.load``: neither imports mmengine nor another extra."""
    done = _python(
        textwrap.dedent(f"""
        import json, sys
        heavy = {HEAVY!r}
        def imported():
            return sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))
        from ssld_zoo.cli.main import main
        rc = main(["list", "resnet18*"])
        after_list = imported()
        import ssld_zoo
        model = ssld_zoo.load("resnet18_vd", pretrained=False)
        print(json.dumps({{"rc": rc, "list": after_list, "load": imported(),
                           "classes": model.num_classes}}))
    """)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "list": [], "load": [], "classes": 1000}, result


def test_core_commands_run_without_the_extras():
    """With the extras unimportable: every core command builds its parser, ``list`` lists,
    and a model loads."""
    done = _python(
        BLOCK_HEAVY
        + textwrap.dedent(f"""
        from ssld_zoo.cli.main import main
        for command in {CORE_COMMANDS!r}:
            try:
                main([command, "--help"])
            except SystemExit as e:
                assert e.code == 0, (command, e.code)
        assert main(["list", "resnet18_vd"]) == 0
        import ssld_zoo
        assert ssld_zoo.load("resnet18_vd", pretrained=False).num_classes == 1000
    """)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resnet18_vd" in done.stdout


def test_a_command_that_needs_an_extra_says_which():
    """Without mmengine, ``--help`` still lists ``distill`` (as unavailable) and running it is
    a one-line error naming the extra to install, not a traceback."""
    done = _python(
        BLOCK_HEAVY
        + textwrap.dedent("""
        import sys
        from ssld_zoo.cli.main import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0, e.code
        sys.exit(main(["distill", "r50d", "--work-dir", "nowhere"]))
    """)
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "distill" in done.stdout and "unavailable" in done.stdout
    error = done.stderr.strip()
    assert "Traceback" not in error
    assert "ssld-zoo distill needs mmengine" in error and "ssld-zoo[train]" in error, error


def test_the_core_install_requires_no_extra():
    """``pip install ssld-zoo`` pulls none of the extras' packages; they are in their extras."""
    import re

    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}

    core = names(project["dependencies"])
    extras = {k: names(v) for k, v in project["optional-dependencies"].items()}
    assert not core & {"mmengine", "scikit-learn", "matplotlib", "onnx", "mmcv", "timm"}, core
    assert "mmengine" in extras["train"]
    assert {"scikit-learn", "matplotlib"} <= extras["demo"]
    assert {"ruff", "mypy"} <= extras["lint"]
