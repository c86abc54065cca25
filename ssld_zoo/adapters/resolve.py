"""What a ``weights=`` argument of the adapters means for a given zoo model."""
from __future__ import annotations

import difflib
import os

from ssld_zoo.registry import get_arch, list_weights

__all__ = ["resolve_weights"]


def resolve_weights(model: str, weights: str | os.PathLike | None) -> str | None:
    """The registered weight name or file path that ``weights`` means for zoo ``model``.

    ``'ssld'`` is the SSLD weights of ``model``'s architecture; a registered weight name or an
    existing file is taken as is; None means no pretrained weights.
    """
    if weights is None:
        return None
    arch = get_arch(model).name
    text = os.fspath(weights)
    registered = {c.name: c for c in list_weights()}
    if text == "ssld":
        if model in registered and registered[model].is_ssld:
            return model
        ssld = [n for n, c in registered.items() if c.arch == arch and c.is_ssld]
        if not ssld:
            have = [n for n, c in registered.items() if c.arch == arch]
            raise ValueError(f"{arch!r} has no SSLD weights (its published weights: "
                             f"{have or 'none'}); pass weights=<one of those>, a file, or None")
        return f"{arch}_ssld" if f"{arch}_ssld" in ssld else sorted(ssld)[0]
    if text in registered or os.path.exists(text):
        return text
    close = difflib.get_close_matches(text, list(registered), n=5, cutoff=0.5)
    raise ValueError(f"weights {text!r} are neither a registered weight name nor an existing "
                     f"file" + (f"; did you mean: {', '.join(close)}?" if close else ""))
