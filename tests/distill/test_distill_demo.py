"""``ssld-zoo demo --quick``: the whole pipeline on scikit-learn's digits, shortened."""

from __future__ import annotations

import json

import pytest

# Slow tier: minutes, not seconds; `make test-fast` leaves these out.
pytestmark = pytest.mark.slow


def test_demo_quick_mode_runs_the_three_trainings(tmp_path, capsys):
    from ssld_zoo.cli.main import main

    plot = tmp_path / "demo.png"
    assert main(["demo", "--quick", "--work-dir", str(tmp_path / "wd"), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    for row in ("teacher", "baseline student", "SSLD student"):
        assert row in out
    # Readable at 80 columns (the width rich uses when stdout is not a terminal): no header
    # cut to "lab…", no line wider than 80.
    assert "top-1 %" in out and "labels" in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # real data went through the real engine: PNG trees, checkpoints, exports with cards
    data = tmp_path / "wd" / "data"
    assert len(list((data / "test").rglob("*.png"))) == 400
    assert len(list((data / "labeled").rglob("*.png"))) == 100
    assert len(list((data / "unlabeled").glob("*.png"))) == 1797 - 400 - 100
    ssld_card = json.loads(next((tmp_path / "wd" / "ssld").glob("*.safetensors.json")).read_text())
    assert ssld_card["teacher"].endswith("teacher.safetensors")  # teacher loaded from its export
    assert ssld_card["training"]["hard_label_weight"] == 0.0
    assert ssld_card["training"]["data"]["num_images"] == 1397
    assert 0 <= ssld_card["top1"] <= 100


def test_digits_split_is_stratified_and_disjoint(tmp_path):
    from ssld_zoo.distill.demo import DemoConfig, prepare_digits

    info = prepare_digits(tmp_path, DemoConfig())
    assert info["counts"] == {"teacher_train": 1397, "labeled": 100, "unlabeled": 1297, "test": 400}
    names = {
        k: {p.name for p in (tmp_path / k).rglob("*.png")} for k in ("labeled", "unlabeled", "test")
    }
    assert not (names["labeled"] & names["unlabeled"]) and not (names["test"] & names["labeled"])
    assert not (names["test"] & names["unlabeled"])
    per_class = [len(list((tmp_path / "labeled" / str(c)).glob("*.png"))) for c in range(10)]
    assert per_class == [10] * 10


def test_the_full_demo_prints_the_figures_the_readme_promises(tmp_path, capsys):
    """The main job is deterministic (seeded, one thread): the README's three figures must be
    the ones it prints (about a minute)."""
    import re

    from ssld_zoo.cli.main import main
    from tests.conftest import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    promised = re.search(r"teacher (\d+\.\d),\s+baseline (\d+\.\d), SSLD student (\d+\.\d)", readme)
    assert promised, "README.md no longer states the demo's figures in the expected form"
    assert (
        main(["demo", "--work-dir", str(tmp_path / "wd"), "--plot", str(tmp_path / "demo.png")])
        == 0
    )
    out = capsys.readouterr().out
    printed = [
        re.search(rf"{row}\s.*?(\d+\.\d)\s+│\s+\d+\s+│", out).group(1)
        for row in ("teacher ", "baseline student", "SSLD student")
    ]
    assert printed == list(promised.groups())
    assert float(printed[0]) >= 97.0  # a teacher worthy of the name on digits
