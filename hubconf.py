"""torch.hub entry points: one per name that ``ssld_zoo.load`` accepts.

    model = torch.hub.load("<owner>/<repo>", "resnet50_vd_ssld")          # from GitHub
    model = torch.hub.load("/path/to/checkout", "resnet50_vd_ssld", source="local")
    torch.hub.list("/path/to/checkout", source="local")                  # every name

Each entry is ``name(pretrained=True, **kwargs)`` = ``ssld_zoo.load(name, pretrained, **kwargs)``
(``num_classes=``, ``features_only=``, ``weights=``... as there).
"""

import keyword
import os
import sys

dependencies = ["torch", "torchvision", "numpy", "safetensors", "filelock"]

# torch.hub puts the repository on sys.path while it imports this file, but an ssld_zoo
# installed elsewhere could come first: import the one of this checkout.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ADDED = sys.path[:1] != [_HERE]
if _ADDED:
    sys.path.insert(0, _HERE)
try:
    import ssld_zoo as _ssld_zoo
    from ssld_zoo.registry import get_arch as _get_arch
    from ssld_zoo.registry import get_weights as _get_weights
finally:
    if _ADDED:
        sys.path.remove(_HERE)


def _entry(name):
    """The hub entry point of one registered name, with a docstring from its card."""

    def entry(pretrained=True, **kwargs):
        return _ssld_zoo.load(name, pretrained=pretrained, **kwargs)

    arch, card = _get_arch(name), _get_weights(name)
    if card is None:
        about = "No published weights: call with pretrained=False."
    else:
        top1 = f"{card.top1:.1f}% ImageNet-1k top-1" if card.top1 is not None else "weights"
        about = f"pretrained=True loads {card.name} ({top1}{', SSLD' if card.is_ssld else ''})."
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"{arch.paddle_name} (PaddleClas), as ssld_zoo.load({name!r}, pretrained, "
        f"**kwargs). {about}"
    )
    return entry


def _register_all():
    taken = set(globals())
    for name in _ssld_zoo.list_models():
        # torch.hub looks entries up as attributes of this module: a name must be one.
        if (
            not name.isidentifier()
            or keyword.iskeyword(name)
            or name.startswith("_")
            or name in taken
        ):
            raise RuntimeError(
                f"registered name {name!r} cannot be a torch.hub entry point "
                "(not a Python identifier, private, or clashing with hubconf)"
            )
        globals()[name] = _entry(name)


_register_all()
