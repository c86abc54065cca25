"""Export a trained student: ``<name>.safetensors`` + its model card ``<name>.safetensors.json``.

The card is a :class:`ssld_zoo.registry.WeightCard` (``WeightCard.to_json``), so
``ssld_zoo.load(arch, weights=PATH)`` reads it back (``WeightCard.from_json``) as
``model.weight_card``; everything else about the run (recipe, data, schedule, metrics per epoch)
sits under ``"training"``, which the card type ignores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ssld_zoo.registry import WeightCard
from ssld_zoo.weights.fileops import atomic_write

__all__ = ["export_with_card", "card_path"]


def card_path(weights: str | os.PathLike) -> Path:
    """The sidecar card of a weights file: ``<file>.json`` (``x.safetensors.json``)."""
    p = Path(weights)
    return p.with_suffix(p.suffix + ".json")


def export_with_card(
    state: dict[str, torch.Tensor],
    out: str | os.PathLike,
    card: WeightCard,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``state`` as safetensors at ``out`` and ``card`` (plus ``training``) beside it,
    both atomically."""
    from safetensors.torch import save_file

    out = Path(out)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    atomic_write(
        out,
        lambda tmp: save_file(
            tensors, str(tmp), metadata={"format": "pt", "weights": card.name, "arch": card.arch}
        ),
    )
    text = json.dumps({**card.to_json(), "training": training or {}}, indent=2, default=str) + "\n"
    atomic_write(card_path(out), lambda tmp: Path(tmp).write_text(text))
    return out
