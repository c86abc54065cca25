"""Zoo backbones in other frameworks and tasks.

* :mod:`ssld_zoo.adapters.stages`: stem/stage structure of any zoo backbone (freezing, per-stage
  learning rates, dilation); plain PyTorch.
* :mod:`ssld_zoo.adapters.mmlab`: ``SSLDBackbone`` for MMDetection 3.x / MMSegmentation 1.x
  configs (needs the OpenMMLab stack: ``downstream/install_openmmlab.sh``).
* :mod:`ssld_zoo.adapters.transfer`: fine-tuning a zoo backbone on an image-folder
  classification dataset with per-stage learning rates (``ssld-zoo transfer``).

Nothing is imported here, so that importing the package never requires mmengine.
"""
