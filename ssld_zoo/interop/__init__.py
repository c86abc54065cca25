"""Interoperability with other PyTorch model libraries.

* :data:`TIMM_EQUIVALENTS`: our architecture name -> the timm model that is the same network;
* :data:`NOT_EQUIVALENT`: near-twins in timm that are not, and why;
* :func:`timm_equivalent`: the timm model name for one of our names, or why there is none;
* :func:`to_timm_state_dict`: a zoo model's weights as a state dict for that timm model
  (``ssld-zoo to-timm NAME OUT.safetensors`` on the command line);
* :func:`check_timm_state_dict`: load such a state dict into timm and compare the outputs.

>>> from ssld_zoo.interop import to_timm_state_dict
>>> timm_name, state = to_timm_state_dict("resnet50_vd_ssld")      # doctest: +SKIP
>>> timm.create_model(timm_name, num_classes=1000).load_state_dict(state)  # doctest: +SKIP
"""
from ssld_zoo.interop.timm_weights import (NOT_EQUIVALENT, TIMM_EQUIVALENTS,
                                           check_timm_state_dict, timm_equivalent,
                                           to_timm_state_dict)

__all__ = ["TIMM_EQUIVALENTS", "NOT_EQUIVALENT", "timm_equivalent", "to_timm_state_dict",
           "check_timm_state_dict"]
