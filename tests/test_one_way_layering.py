"""One-way layering (issue 21): engine/, deploy/, adapters/ and data/ never import distill/;
distill/ and engine/ are regular packages that say what they export."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ssld_zoo"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_lower_floors_never_import_distill():
    for floor in ("engine", "deploy", "adapters", "data", "weights", "models"):
        for f in sorted((PKG / floor).rglob("*.py")):
            bad = sorted(m for m in _imports(f) if m.startswith("ssld_zoo.distill"))
            assert not bad, f"{f.relative_to(PKG)} imports {bad}"


def test_distill_and_engine_are_packages_with_all():
    import ssld_zoo.distill
    import ssld_zoo.engine

    for pkg in (ssld_zoo.distill, ssld_zoo.engine):
        assert pkg.__all__ and all(hasattr(pkg, n) for n in pkg.__all__), pkg.__name__
