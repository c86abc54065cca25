"""Trust, end to end through the one seam (``load_weights``, hence ``ssld_zoo.load``): a hash is
recorded only for a file that validated against its architecture; poisoned, truncated or
tampered cache entries are quarantined, reported and rebuilt; ``cache clear`` and
``cache forget`` restore a clean state; SSLD_ZOO_MIRROR serves the registered weights.

The registered weight ``mobilenetv1_x0_25`` (0.47M parameters) is served, with random tensors
in PaddleClas's format, by the local server standing in as the mirror.
"""

from __future__ import annotations

import json

import pytest
import torch

import ssld_zoo
from ssld_zoo.registry import get_weights
from ssld_zoo.weights import cache, trust
from ssld_zoo.weights.errors import (
    CacheRepairWarning,
    ChecksumError,
    NotWeightsError,
    StateDictMismatch,
)
from ssld_zoo.weights.source import load_weights, registered_state
from tests.weights.server import HTML, cache_listing, pdparams_bytes, run_concurrently, sha

NAME = "mobilenetv1_x0_25"
CARD = get_weights(NAME)
FILE = CARD.file_name  # MobileNetV1_x0_25_pretrained.pdparams


@pytest.fixture(scope="module")
def real_bytes() -> bytes:
    return pdparams_bytes(NAME)


@pytest.fixture
def mirror(server, monkeypatch, real_bytes):
    """The local server as SSLD_ZOO_MIRROR, serving the card's file; yields Served."""
    base, served = server
    monkeypatch.setenv("SSLD_ZOO_MIRROR", base)
    served.files["/" + FILE] = real_bytes
    return served


def fc_weight(model) -> torch.Tensor:
    return model.state_dict()["fc.weight"]


def expected_fc(data: bytes) -> torch.Tensor:
    import pickle

    return torch.from_numpy(pickle.loads(data)["fc.weight"]).t()


def test_load_through_the_mirror_downloads_validates_converts_and_caches(mirror, home, real_bytes):
    model = ssld_zoo.load(NAME)
    torch.testing.assert_close(fc_weight(model), expected_fc(real_bytes), rtol=0, atol=0)
    assert model.weight_card is CARD
    assert len(mirror.hits("/" + FILE)) == 1
    assert cache_listing(home) == {
        "downloads": [FILE],
        "converted": [f"{NAME}.safetensors"],
        "quarantine": [],
    }
    rec = trust.read_records()[FILE]
    assert rec["sha256"] == sha(real_bytes) and rec["arch"] == NAME
    again = ssld_zoo.load(NAME)  # from the converted cache: no request
    assert len(mirror.hits("/" + FILE)) == 1
    torch.testing.assert_close(fc_weight(again), fc_weight(model), rtol=0, atol=0)


def test_an_html_page_never_becomes_the_trusted_file(mirror, home):
    """The cache poisoning of issue 13: a web page served with 200 must not be cached with
    its hash recorded, or the real file is refused later."""
    mirror.files["/" + FILE] = HTML
    with pytest.raises(NotWeightsError) as e:
        ssld_zoo.load(NAME)
    msg = str(e.value)
    assert f"/{FILE}: the downloaded file is not valid weights for {NAME}: " in msg
    assert "PdparamsError" not in msg and "not a readable .pdparams file" in msg
    assert "it starts with '<!DOCTYPE html>" in msg and "\n" not in msg
    assert cache_listing(home) == {"downloads": [], "converted": [], "quarantine": []}
    assert trust.read_records() == {}
    mirror.files["/" + FILE] = pdparams_bytes(NAME)
    ssld_zoo.load(NAME)  # accepted: nothing recorded refuses it


def test_a_file_for_another_architecture_is_not_trusted(mirror, home):
    mirror.files["/" + FILE] = pdparams_bytes("mobilenetv1_x0_5")
    with pytest.raises(
        NotWeightsError,
        match=r"not valid weights for mobilenetv1_x0_25: .* do "
        r"not fit MobileNetV1: 136 keys of the wrong shape"
        r".*; the file fits the registered architecture "
        r"'mobilenetv1_x0_5'; nothing was cached",
    ):
        ssld_zoo.load(NAME)
    assert trust.read_records() == {} and cache_listing(home)["downloads"] == []


def test_nan_weights_from_the_server_are_not_trusted(mirror, home):
    def poison(state):
        state["fc.weight"][0, 0] = float("nan")

    mirror.files["/" + FILE] = pdparams_bytes(NAME, tweak=poison)
    with pytest.raises(NotWeightsError, match=r"fc.weight has 1 NaN/Inf values"):
        ssld_zoo.load(NAME)
    assert trust.read_records() == {} and cache_listing(home)["downloads"] == []


def test_a_poisoned_download_left_by_an_older_version_is_quarantined_and_refetched(
    mirror, home, real_bytes
):
    # What the old trust-on-first-use code could leave behind: the page and its hash.
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / FILE).write_bytes(HTML)
    (home / "sha256.json").write_text(
        json.dumps(
            {"format": 1, "files": {FILE: {"sha256": sha(HTML), "url": "x", "size": len(HTML)}}}
        )
    )
    assert trust.read_records() == {}  # records that predate validation are not trusted
    with pytest.warns(CacheRepairWarning) as w:
        model = ssld_zoo.load(NAME)
    text = str(w[0].message)
    assert (
        text.startswith(f"{home / 'downloads' / FILE}: damaged cache entry (")
        and "not a readable .pdparams file" in text
        and f"fetching {FILE} again" in text
    )
    torch.testing.assert_close(fc_weight(model), expected_fc(real_bytes), rtol=0, atol=0)
    assert len(mirror.hits("/" + FILE)) == 1
    assert len(cache_listing(home)["quarantine"]) == 1
    assert trust.read_records()[FILE]["sha256"] == sha(real_bytes)


def test_a_truncated_converted_file_is_quarantined_and_rebuilt_without_a_download(mirror, home):
    first = ssld_zoo.load(NAME)
    conv = cache.converted_path(CARD)
    conv.write_bytes(conv.read_bytes()[: conv.stat().st_size // 2])
    with pytest.warns(
        CacheRepairWarning,
        match=r"damaged converted cache entry: .*"
        r"mobilenetv1_x0_25.safetensors: not a readable "
        r"safetensors file .*; moved it to .*quarantine",
    ):
        again = ssld_zoo.load(NAME)
    torch.testing.assert_close(fc_weight(again), fc_weight(first), rtol=0, atol=0)
    assert len(mirror.hits("/" + FILE)) == 1  # rebuilt from the validated download
    assert cache_listing(home)["converted"] == [f"{NAME}.safetensors"]
    assert len(cache_listing(home)["quarantine"]) == 1


def test_a_converted_file_with_bad_values_or_of_another_weight_is_rebuilt(mirror, home):
    from safetensors.torch import load_file, save_file

    ssld_zoo.load(NAME)
    conv = cache.converted_path(CARD)
    state = load_file(str(conv))
    state["fc.bias"][3] = float("inf")
    save_file(state, str(conv), metadata={"weights": NAME, "converted": "1"})
    with pytest.warns(CacheRepairWarning, match=r"fc.bias has 1 NaN/Inf values"):
        ssld_zoo.load(NAME)
    save_file(load_file(str(conv)), str(conv), metadata={"weights": "other", "converted": "1"})
    with pytest.warns(CacheRepairWarning, match=r"written for 'other'"):
        ssld_zoo.load(NAME)
    assert len(mirror.hits("/" + FILE)) == 1


def test_a_tampered_download_is_quarantined_and_refetched(mirror, home):
    ssld_zoo.load(NAME)
    (home / "downloads" / FILE).write_bytes(pdparams_bytes(NAME, seed=1))  # valid, but other
    cache.converted_path(CARD).unlink()
    with pytest.warns(CacheRepairWarning, match=r"damaged cache entry \(sha256 .*\(recorded"):
        ssld_zoo.load(NAME)
    assert len(mirror.hits("/" + FILE)) == 2


def test_a_changed_upstream_is_refused_until_its_hash_is_forgotten(mirror, home, capsys):
    from ssld_zoo.cli.main import main

    ssld_zoo.load(NAME)
    assert main(["cache", "clear", NAME, "--yes", "--keep-hashes"]) == 0
    mirror.files["/" + FILE] = pdparams_bytes(NAME, seed=2)
    with pytest.raises(ChecksumError) as e:
        ssld_zoo.load(NAME)
    assert f"recorded in {home / 'sha256.json'} when it first validated" in str(e.value)
    assert f"ssld-zoo cache forget {FILE}" in str(e.value)
    assert cache_listing(home) == {"downloads": [], "converted": [], "quarantine": []}
    assert main(["cache", "forget", NAME]) == 0  # by weight name, the file being gone
    assert f"forgot the recorded sha256 of {FILE}" in capsys.readouterr().out
    ssld_zoo.load(NAME)


def test_cache_clear_restores_a_clean_state(mirror, home, capsys):
    from ssld_zoo.cli.main import main

    ssld_zoo.load(NAME)
    assert main(["cache", "clear", NAME, "--yes"]) == 0
    assert cache_listing(home) == {"downloads": [], "converted": [], "quarantine": []}
    assert trust.read_records() == {}  # the hash went with the file
    assert main(["cache", "forget", NAME]) == 0
    assert "no recorded hash matches" in capsys.readouterr().out
    mirror.files["/" + FILE] = pdparams_bytes(NAME, seed=3)  # upstream changed meanwhile
    ssld_zoo.load(NAME)  # no stale hash refuses it


def test_unreadable_records_are_quarantined_with_a_warning(mirror, home):
    home.mkdir(parents=True)
    (home / "sha256.json").write_text("{not json")
    with pytest.warns(CacheRepairWarning, match=r"sha256.json: unreadable checksum records"):
        ssld_zoo.load(NAME)
    assert FILE in trust.read_records()
    assert any(n.endswith("sha256.json") for n in cache_listing(home)["quarantine"])


def test_concurrent_loads_download_and_convert_once(mirror, home):
    mirror.delay["/" + FILE] = 0.3
    models, errors = run_concurrently(lambda: ssld_zoo.load(NAME), 4, 60)
    assert errors == [] and len(models) == 4
    assert len(mirror.hits("/" + FILE)) == 1
    for m in models[1:]:
        torch.testing.assert_close(fc_weight(m), fc_weight(models[0]), rtol=0, atol=0)


def test_a_url_as_weights(server, home, real_bytes):
    base, served = server
    served.files["/mine/Custom.pdparams"] = real_bytes
    model = ssld_zoo.load(NAME, weights=base + "/mine/Custom.pdparams")
    torch.testing.assert_close(fc_weight(model), expected_fc(real_bytes), rtol=0, atol=0)
    assert model.weight_card is None
    assert trust.read_records()["Custom.pdparams"]["arch"] == NAME
    assert cache_listing(home)["converted"] == []  # only registered weights are kept converted
    # The cached file is sound: asked for another architecture, it is that call that fails.
    with pytest.raises(StateDictMismatch, match=r"Custom.pdparams do not fit MobileNetV1"):
        ssld_zoo.load("mobilenetv1_x0_5", weights=base + "/mine/Custom.pdparams")
    assert "Custom.pdparams" in cache_listing(home)["downloads"]
    assert cache_listing(home)["quarantine"] == []
    served.files["/mine/Other.pdparams"] = real_bytes
    with pytest.raises(NotWeightsError, match="not valid weights for mobilenetv1_x0_5"):
        ssld_zoo.load("mobilenetv1_x0_5", weights=base + "/mine/Other.pdparams")
    assert "Other.pdparams" not in cache_listing(home)["downloads"]


def test_registered_weights_for_another_architecture_say_whose_they_are(mirror):
    with pytest.raises(
        StateDictMismatch,
        match=r"weights 'mobilenetv1_x0_25' do not fit "
        r"MobileNetV1: .*; they are for architecture "
        r"'mobilenetv1_x0_25'",
    ):
        load_weights(NAME, "mobilenetv1_x0_5")


def test_ssld_backbone_loads_through_the_seam_without_building_twice(
    mirror, real_bytes, monkeypatch
):
    import ssld_zoo.api
    from ssld_zoo.adapters.mmlab import SSLDBackbone

    b = SSLDBackbone(model=NAME, weights=NAME, out_indices=(1, 2))
    loads = []
    monkeypatch.setattr(ssld_zoo.api, "load", lambda *a, **k: loads.append(a))
    b.init_weights()
    assert loads == []  # the weights come from load_weights, not from a second model
    got = b.body.model.state_dict()
    want = registered_state(CARD)
    for k, v in got.items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(v, want[k], rtol=0, atol=0, msg=k)
    assert b.weight_card is CARD and b.pretrained_cfg["tag"] == NAME


def test_cli_download_command(mirror, home, capsys, monkeypatch):
    from ssld_zoo.cli import _console
    from ssld_zoo.cli.main import main

    monkeypatch.setattr(_console.console, "_width", 200)  # whole names, no folding
    assert main(["download", NAME]) == 0
    out = capsys.readouterr().out
    assert NAME in out and FILE in out
    assert (home / "converted" / f"{NAME}.safetensors").is_file()
    assert main(["download", "mobilenetv1_x0_2*"]) == 0  # a pattern; cached: no request
    assert len(mirror.hits("/" + FILE)) == 1
    assert main(["download", "nonexistent_model"]) == 1
    assert "unknown model" in capsys.readouterr().err
    mirror.files["/MobileNetV1_x0_5_pretrained.pdparams"] = HTML
    assert main(["download", "mobilenetv1_x0_5"]) == 1
    err = capsys.readouterr().err
    assert "error: could not get MobileNetV1_x0_5_pretrained.pdparams" in err
