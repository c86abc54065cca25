"""Our weights in the layouts other code loads, each proven by running that code.

One module per format, registered by name (:func:`list_formats`): ``timm``
(:mod:`.timm_weights`), ``mmdet`` (:mod:`.mmdet`), ``hf`` (:mod:`.hf`), ``rtdetr``
(:mod:`.rtdetr`), ``dfine`` (:mod:`.dfine`); what they share is in :mod:`._core`.
``ssld-zoo to FORMAT NAME OUT`` on the command line.

* :func:`convert`: ``(model, converted)`` for a format and a model or name;
* :func:`get_format`: the :class:`Format` (``targets()``, ``check()``, ``write()``, ``usage()``);
* :func:`formats_for`: the formats an architecture converts to;
* :data:`TIMM_EQUIVALENTS` / :data:`NOT_EQUIVALENT`, :func:`to_timm_state_dict`,
  :func:`check_timm_state_dict`, :func:`timm_equivalent`: the timm format's own API.

>>> from ssld_zoo.interop import convert, get_format
>>> model, converted = convert("mmdet", "resnet50_vd_ssld")        # doctest: +SKIP
>>> get_format("mmdet").check(model, converted)                     # doctest: +SKIP
"""

from ssld_zoo.interop._core import Converted, Format, convert, formats_for, get_format, list_formats
from ssld_zoo.interop.timm_weights import (
    NOT_EQUIVALENT,
    TIMM_EQUIVALENTS,
    check_timm_state_dict,
    timm_equivalent,
    to_timm_state_dict,
)

__all__ = [
    "convert",
    "get_format",
    "list_formats",
    "formats_for",
    "Format",
    "Converted",
    "TIMM_EQUIVALENTS",
    "NOT_EQUIVALENT",
    "timm_equivalent",
    "to_timm_state_dict",
    "check_timm_state_dict",
]
