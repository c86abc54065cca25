"""``ssld-zoo demo --quick``: the whole pipeline on scikit-learn's digits, shortened."""
from __future__ import annotations

import json

import pytest



def test_demo_quick_mode_runs_the_three_trainings(tmp_path, capsys):
    from ssld_zoo.cli.main import main
    plot = tmp_path / "demo.png"
    assert main(["demo", "--quick", "--work-dir", str(tmp_path / "wd"), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    for row in ("teacher", "student, supervised (baseline)", "student, SSLD label-free"):
        assert row in out
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
    assert info["counts"] == {"teacher_train": 1397, "labeled": 100, "unlabeled": 1297,
                              "test": 400}
    names = {k: {p.name for p in (tmp_path / k).rglob("*.png")}
             for k in ("labeled", "unlabeled", "test")}
    assert not (names["labeled"] & names["unlabeled"]) and not (names["test"] & names["labeled"])
    assert not (names["test"] & names["unlabeled"])
    per_class = [len(list((tmp_path / "labeled" / str(c)).glob("*.png"))) for c in range(10)]
    assert per_class == [10] * 10
