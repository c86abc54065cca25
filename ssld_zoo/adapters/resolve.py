"""What a ``weights=`` argument of the adapters means for a given zoo model."""

from __future__ import annotations

import os

from ssld_zoo.registry import get_arch, list_weights

__all__ = ["resolve_weights"]


def resolve_weights(model: str, weights: str | os.PathLike | None) -> str | None:
    """The registered weight name, file path or URL that ``weights`` means for zoo ``model``.

    ``'ssld'`` is the SSLD weights of ``model``'s architecture; anything else is what
    :func:`ssld_zoo.weights.source.parse_source` accepts (checked here, so that a typo fails
    when the config is built, not when training starts); None means no pretrained weights.
    """
    from ssld_zoo.weights.source import parse_source

    if weights is None:
        return None
    arch = get_arch(model).name
    if os.fspath(weights) == "ssld":
        registered = {c.name: c for c in list_weights()}
        if model in registered and registered[model].is_ssld:
            return model
        ssld = [n for n, c in registered.items() if c.arch == arch and c.is_ssld]
        if not ssld:
            have = [n for n, c in registered.items() if c.arch == arch]
            raise ValueError(
                f"{arch!r} has no SSLD weights (its published weights: "
                f"{have or 'none'}); pass weights=<one of those>, a file, or None"
            )
        return f"{arch}_ssld" if f"{arch}_ssld" in ssld else sorted(ssld)[0]
    return str(parse_source(weights))
