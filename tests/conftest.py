"""Shared fixtures: where the real test data and the PaddlePaddle reference live.

Both are optional on a developer machine (tests that need them skip, saying why) and mandatory
in CI: when the environment variable ``CI`` is set (``CI=true``), a missing resource fails the
test instead, so that a broken CI setup cannot pass by skipping everything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """Under pytest-xdist, each worker gets its share of the cores: torch's OpenMP threads spin
    when more of them than cores run at once (2 workers x 2 threads on 2 cores is slower than
    2 x 1). Subprocesses the tests start inherit the same limit."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    threads = max(1, (os.cpu_count() or 1) // int(workers))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    import torch

    torch.set_num_threads(threads)


def in_ci() -> bool:
    """True when running under CI (env ``CI`` set to anything but '', '0', 'false', 'no')."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip the current test, or fail it under CI, because a resource is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: required resources must be present)", pytrace=False)
    pytest.skip(reason)


def data_root() -> Path:
    """``$SSLD_ZOO_TEST_DATA`` (default ``<repo>/../shared/data``): the real-data folder."""
    return Path(os.environ.get("SSLD_ZOO_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


def paddle_python_path() -> Path:
    """``$SSLD_ZOO_PADDLE_PYTHON`` (default ``<repo>/.venv-paddle/bin/python``)."""
    return Path(
        os.environ.get("SSLD_ZOO_PADDLE_PYTHON", REPO_ROOT / ".venv-paddle" / "bin" / "python")
    )


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The real-data folder; skips (fails under CI) when it is absent."""
    root = data_root()
    if not root.is_dir():
        unavailable(f"test data folder {root} not found: set SSLD_ZOO_TEST_DATA")
    return root


@pytest.fixture(scope="session")
def paddle_python() -> Path:
    """The python of the PaddlePaddle reference venv, checked to import paddle and ppcls once.

    Skips (fails under CI) when it is absent or broken; create it with
    ``tests/parity/setup_paddle_env.sh``.
    """
    py = paddle_python_path()
    hint = "create it with tests/parity/setup_paddle_env.sh or set SSLD_ZOO_PADDLE_PYTHON"
    if not py.exists():
        unavailable(f"PaddlePaddle reference python {py} not found: {hint}")
    check = (
        "import importlib.metadata as m, paddle; print(paddle.__version__, m.version('paddleclas'))"
    )
    try:
        res = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        unavailable(f"PaddlePaddle reference python {py} does not run ({e}): {hint}")
    if res.returncode != 0:
        unavailable(
            f"PaddlePaddle reference python {py} cannot import paddle/paddleclas:\n"
            f"{res.stderr[-2000:]}\n{hint}"
        )
    return py


@pytest.fixture(scope="session")
def test_data_optional() -> Path | None:
    """The real-data folder, or None when absent (for tests that can do part of their job
    without it and skip the rest with :func:`unavailable`)."""
    root = data_root()
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def resource_unavailable():
    """:func:`unavailable` as a fixture: skip, or fail under CI, naming what is missing."""
    return unavailable


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print the per-architecture timings the parity tests record (CI time budget)."""
    rows: dict[str, dict] = {}
    for reports in terminalreporter.stats.values():
        for rep in reports:
            for key, value in getattr(rep, "user_properties", ()):
                if key == "parity_timing":
                    rows[value["arch"]] = value
    if not rows:
        return
    terminalreporter.write_sep("-", "PaddleClas parity timings (seconds; wall and CPU)")
    terminalreporter.write_line(
        f"{'architecture':<28}{'paddle':>9}{'torch':>9}{'total':>9}"
        f"{'paddle cpu':>12}{'torch cpu':>11}{'cpu':>9}"
    )
    tot = dict.fromkeys(("paddle_s", "torch_s", "paddle_cpu_s", "torch_cpu_s"), 0.0)
    for arch in sorted(rows):
        r = rows[arch]
        for k in tot:
            tot[k] += r[k]
        terminalreporter.write_line(
            f"{arch:<28}{r['paddle_s']:>9.1f}{r['torch_s']:>9.1f}"
            f"{r['paddle_s'] + r['torch_s']:>9.1f}{r['paddle_cpu_s']:>12.1f}"
            f"{r['torch_cpu_s']:>11.1f}{r['paddle_cpu_s'] + r['torch_cpu_s']:>9.1f}"
        )
    terminalreporter.write_line(
        f"{'all':<28}{tot['paddle_s']:>9.1f}{tot['torch_s']:>9.1f}"
        f"{tot['paddle_s'] + tot['torch_s']:>9.1f}{tot['paddle_cpu_s']:>12.1f}"
        f"{tot['torch_cpu_s']:>11.1f}{tot['paddle_cpu_s'] + tot['torch_cpu_s']:>9.1f}"
    )
