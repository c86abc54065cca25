"""hubconf.py: torch.hub sees one entry point per registered name, and each is ssld_zoo.load."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest
import torch

import ssld_zoo

REPO_ROOT = Path(__file__).resolve().parents[2]


def hub_list() -> list[str]:
    """``torch.hub.list`` on the checkout. torch versions whose ``hub.list`` takes no
    ``source`` (GitHub only) get the same two steps it runs on a repository folder."""
    if "source" in inspect.signature(torch.hub.list).parameters:
        return torch.hub.list(str(REPO_ROOT), source="local", trust_repo=True)
    from torch.hub import MODULE_HUBCONF, _add_to_sys_path, _import_module

    with _add_to_sys_path(str(REPO_ROOT)):
        module = _import_module(MODULE_HUBCONF, str(REPO_ROOT / MODULE_HUBCONF))
    return [f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_")]


def import_hubconf(name: str = "hubconf_under_test"):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hub_lists_every_registered_name_and_nothing_else():
    path = list(sys.path)
    assert sorted(hub_list()) == ssld_zoo.list_models()
    assert sys.path == path  # the import leaves sys.path as it found it


def test_hub_load_is_ssld_zoo_load():
    torch.manual_seed(0)
    theirs = torch.hub.load(str(REPO_ROOT), "resnet18_vd", source="local", pretrained=False)
    torch.manual_seed(0)
    ours = ssld_zoo.load("resnet18_vd", pretrained=False)
    assert type(theirs) is type(ours) and not theirs.training
    a, b = theirs.state_dict(), ours.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=0)
    # keyword arguments reach ssld_zoo.load
    small = torch.hub.load(
        str(REPO_ROOT), "resnet18_vd", source="local", pretrained=False, num_classes=10
    )
    assert small(x).shape == (2, 10)


def test_entries_have_signature_and_docstring():
    hub = import_hubconf()
    entry = hub.resnet50_vd_ssld
    assert inspect.signature(entry).parameters["pretrained"].default is True
    assert "resnet50_vd_ssld" in entry.__doc__ and "83.0" in entry.__doc__
    assert "pretrained=False" in hub.se_hrnet_w64_c.__doc__  # no published weights
    with pytest.raises(ValueError, match="no published weights"):
        hub.se_hrnet_w64_c()  # pretrained=True by default: the name's weights, or an error


def test_a_name_that_is_no_identifier_fails_loudly(monkeypatch):
    monkeypatch.setattr(ssld_zoo, "list_models", lambda: ["resnet50_vd", "resnet50-vd"])
    with pytest.raises(RuntimeError, match="'resnet50-vd'"):
        import_hubconf("hubconf_bad_name")
