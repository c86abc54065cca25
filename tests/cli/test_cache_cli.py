"""``ssld-zoo cache list|clear|forget|dir`` on a private cache."""

import io
import json

import pytest
import torch

from ssld_zoo.cli.main import main
from ssld_zoo.weights import trust

RECORD = {
    "sha256": "a" * 64,
    "url": "u",
    "size": 10,
    "arch": "resnet18_vd",
    "recorded": "2026-01-01T00:00:00+00:00",
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache holding a registered weight's download and conversion, a foreign download and
    a partial download."""
    from safetensors.torch import save_file

    from ssld_zoo.cli import _console

    monkeypatch.setattr(_console.console, "_width", 200)  # whole names, no folding
    home = tmp_path / "home"
    monkeypatch.setenv("SSLD_ZOO_HOME", str(home))
    (home / "downloads").mkdir(parents=True)
    (home / "converted").mkdir()
    (home / "downloads" / "ResNet18_vd_pretrained.pdparams").write_bytes(b"r" * 3000)
    (home / "downloads" / "Other.pdparams").write_bytes(b"o" * 10)
    (home / "downloads" / "ResNet34_vd_pretrained.pdparams.part").write_bytes(b"p" * 7)
    (home / "downloads" / "ResNet34_vd_pretrained.pdparams.part.json").write_text("{}")
    save_file(
        {"w": torch.zeros(4)},
        str(home / "converted" / "resnet18_vd.safetensors"),
        metadata={"weights": "resnet18_vd"},
    )
    return home


def names(home):
    return sorted(p.name for d in ("downloads", "converted") for p in (home / d).iterdir())


def test_cache_list(cache, capsys):
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    for text in (
        "ResNet18_vd_pretrained.pdparams",
        "Other.pdparams",
        "resnet18_vd.safetensors",
        "ResNet34_vd_pretrained.pdparams.part",
        "converted",
        "partial",
        "resnet34_vd",
        "2.9 KiB",
        "4 files",
    ):
        assert text in out, text


def test_cache_list_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSLD_ZOO_HOME", str(tmp_path / "nothing"))
    assert main(["cache", "list"]) == 0
    assert "is empty" in capsys.readouterr().out


def test_cache_clear_pattern_removes_only_matches(cache, capsys):
    assert main(["cache", "clear", "resnet18_vd", "--yes"]) == 0  # a weight name
    assert "deleted 2 files" in capsys.readouterr().out
    assert names(cache) == [
        "Other.pdparams",
        "ResNet34_vd_pretrained.pdparams.part",
        "ResNet34_vd_pretrained.pdparams.part.json",
    ]
    assert main(["cache", "clear", "*34*", "-y"]) == 0  # the partial and its state file
    assert names(cache) == ["Other.pdparams"]
    assert main(["cache", "clear", "nomatch*", "--yes"]) == 0
    assert "no cached files matching" in capsys.readouterr().out
    assert names(cache) == ["Other.pdparams"]


def test_cache_clear_needs_confirmation(cache, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: cannot ask
    assert main(["cache", "clear"]) == 1
    assert "--yes" in capsys.readouterr().err
    assert len(names(cache)) == 5


def _records(home, **files):
    (home / "sha256.json").write_text(json.dumps({"format": 2, "files": files}))


def test_cache_clear_forgets_the_hashes_of_what_it_deletes(cache):
    _records(cache, **{"Other.pdparams": RECORD, "ResNet18_vd_pretrained.pdparams": RECORD})
    assert main(["cache", "clear", "Other*", "--yes"]) == 0
    assert trust.recorded_sha256("Other.pdparams") is None  # a clean state: as if never fetched
    assert trust.recorded_sha256("ResNet18_vd_pretrained.pdparams") == "a" * 64
    assert main(["cache", "clear", "resnet18*", "--yes", "--forget-hashes"]) == 0  # former flag
    assert trust.read_records() == {}


def test_cache_clear_keep_hashes_then_forget(cache, capsys):
    _records(cache, **{"Other.pdparams": RECORD})
    assert main(["cache", "clear", "Other*", "--yes", "--keep-hashes"]) == 0
    assert trust.recorded_sha256("Other.pdparams") == "a" * 64  # a re-download must match it
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "hash" in out and "Other.pdparams" in out and "aaaaaaaaaa" in out
    # The file is gone, yet its hash can still be forgotten, by file or by pattern.
    assert main(["cache", "forget", "other.*"]) == 0
    assert "forgot the recorded sha256 of Other.pdparams" in capsys.readouterr().out
    assert trust.recorded_sha256("Other.pdparams") is None
    assert main(["cache", "forget", "other.*"]) == 0
    assert "no recorded hash matches" in capsys.readouterr().out


def test_cache_clear_removes_hash_only_entries_too(cache):
    _records(cache, **{"Gone.pdparams": RECORD})
    assert main(["cache", "clear", "Gone*", "--yes"]) == 0
    assert trust.read_records() == {}


def test_cache_clear_all_restores_an_empty_cache(cache):
    _records(cache, **{"Other.pdparams": RECORD})
    (cache / "quarantine").mkdir()
    (cache / "quarantine" / "20260101T000000-1-Bad.pdparams").write_bytes(b"<html>")
    assert main(["cache", "clear", "--yes"]) == 0
    assert names(cache) == [] and not (cache / "quarantine").exists()
    assert trust.read_records() == {}


def test_forget_by_weight_name(cache):
    _records(cache, **{"ResNet18_vd_pretrained.pdparams": RECORD, "Other.pdparams": RECORD})
    assert main(["cache", "forget", "resnet18_vd"]) == 0
    assert set(trust.read_records()) == {"Other.pdparams"}


def test_cache_dir(cache, capsys):
    assert main(["cache", "dir"]) == 0
    assert capsys.readouterr().out.strip() == str(cache)
