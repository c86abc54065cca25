"""MODEL_ZOO.md: generated from the registry, and its figures are the published ones.

The published figures are checked against ``../shared/reference/SSLD_FACTS.md`` (PaddleClas's
SSLD doc, the Next-ViT and PP-HGNetV2 docs), parsed here independently of the registry, so a
wrong number in a weight card fails even though the generator would copy it faithfully.
"""

import re

import pytest

from ssld_zoo.model_zoo_md import render
from ssld_zoo.registry import list_weights
from tests.conftest import REPO_ROOT, unavailable

FACTS = REPO_ROOT.parent / "shared" / "reference" / "SSLD_FACTS.md"
# Two sources round differently (PP-HGNet.md gives 81.51 where ssld.md gives 81.50).
TOLERANCE = 0.05


def published_top1() -> dict[str, tuple[float | None, float]]:
    """PaddleClas name -> (baseline top-1 or None, SSLD top-1), from SSLD_FACTS.md."""
    if not FACTS.is_file():
        unavailable(f"{FACTS} not found (../shared/reference)")
    text = FACTS.read_text()
    section = text.split("## Published top-1", 1)[1].split("\n## ", 1)[0]
    facts: dict[str, tuple[float | None, float]] = {}
    for name, base, ssld in re.findall(r"(\w+) (-|\d+\.\d+) -> (\d+\.\d+)", section):
        facts[name] = (None if base == "-" else float(base), float(ssld))
    nextvit = re.search(
        r"NextViT small/base/large SSLD.*?: ([\d. /]+) at 224,\s*([\d. /]+) at 384", section, re.S
    )
    for res, group in ((224, nextvit.group(1)), (384, nextvit.group(2))):
        for size, value in zip(("small", "base", "large"), group.split("/")):
            facts[f"NextViT_{size}_{res}"] = (None, float(value))
    hgv2 = re.search(r"PPHGNetV2 B0\.\.B6 SSLD stage 2.*?:\s*([\d. /]+)\.", section, re.S)
    for i, value in enumerate(hgv2.group(1).split("/")):
        facts[f"PPHGNetV2_B{i}"] = (None, float(value))
    assert len(facts) >= 36, f"parsed only {len(facts)} published figures from {FACTS}"
    return facts


def zoo_rows() -> dict[str, tuple[str, str, str]]:
    """weight name -> (architecture, baseline top-1, SSLD top-1) cells of MODEL_ZOO.md's table
    of SSLD weights."""
    text = (REPO_ROOT / "MODEL_ZOO.md").read_text()
    table = text.split("## SSLD weights", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 7 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[5], cells[6])
    return rows


def test_model_zoo_md_is_the_generator_output():
    committed = (REPO_ROOT / "MODEL_ZOO.md").read_text()
    assert committed == render(), "MODEL_ZOO.md is stale: run `make zoo-md`"


def test_every_weight_is_listed():
    text = (REPO_ROOT / "MODEL_ZOO.md").read_text()
    for card in list_weights():
        assert f"`{card.name}`" in text


def test_ssld_figures_equal_the_published_ones():
    facts, rows = published_top1(), zoo_rows()
    checked = 0
    for weight, (arch, base_cell, ssld_cell) in rows.items():
        if weight.endswith("_stage1") or arch not in facts:
            continue
        want_base, want_ssld = facts[arch]
        assert float(ssld_cell) == pytest.approx(want_ssld, abs=TOLERANCE), weight
        if want_base is not None:
            assert float(base_cell) == pytest.approx(want_base, abs=TOLERANCE), weight
        checked += 1
    # Every published SSLD figure has its row.
    listed = {arch for arch, _, _ in rows.values()}
    assert sorted(set(facts) - listed) == []
    assert checked >= 36
