# What every SSLD downstream config shares: the adapter's registration and the zoo backbone in
# place of the base config's ResNet (ResNet50_vd, SSLD weights, all four stages out).
# Building block for mmdet/_base_/ and mmseg/_base_/, not a config to train.
#
# mmengine refuses a key that two bases both define, and the OpenMMLab detector/segmentor
# base defines `model`, so the backbone stands here under a name of its own: a config that
# inherits this file next to its OpenMMLab base takes it out of `_base_` into its model,
#     model = dict(backbone=_base_.pop('ssld_backbone'))
# and its final config keeps no `ssld_backbone` key.
custom_imports = dict(imports=["ssld_zoo.adapters.mmlab"], allow_failed_imports=False)

ssld_backbone = dict(
    _delete_=True,  # replaces the base's ResNet backbone, not merged into it
    type="SSLDBackbone",
    model="resnet50_vd",
    weights="ssld",  # resnet50_vd_ssld; a file path or a registered weight name works too
    out_indices=(0, 1, 2, 3),
)
