"""ssld-zoo: PaddleClas's SSLD backbones and the SSLD distillation method, in PyTorch.

>>> import ssld_zoo
>>> model = ssld_zoo.load("resnet50_vd_ssld")          # doctest: +SKIP
>>> ssld_zoo.list_models("*_ssld")                     # doctest: +SKIP
"""

from ssld_zoo.api import class_names, load, model_info, transforms
from ssld_zoo.registry import list_models

__version__ = "0.1.0"
__all__ = ["load", "list_models", "model_info", "transforms", "class_names", "__version__"]
