"""MODEL_ZOO.md is generated from the registry; it must be in sync."""
from pathlib import Path

from ssld_zoo.model_zoo_md import render
from ssld_zoo.registry import list_weights

ROOT = Path(__file__).resolve().parents[1]


def test_model_zoo_md_in_sync():
    committed = (ROOT / "MODEL_ZOO.md").read_text()
    assert committed == render(), "MODEL_ZOO.md is stale: run `make zoo-md`"


def test_every_weight_is_listed():
    text = render()
    for card in list_weights():
        assert f"`{card.name}`" in text
