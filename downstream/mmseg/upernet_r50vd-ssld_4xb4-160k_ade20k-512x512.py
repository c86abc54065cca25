# UperNet on ADE20K, 160k iterations, with PaddleClas's ResNet50_vd SSLD weights (83.0% ImageNet top-1).
# Baseline twin (ResNet50_vd's ordinary weights, 79.1%): upernet_r50vd_4xb4-160k_ade20k-512x512.py
_base_ = ["mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py", "./_base_/ssld_backbone.py"]

model = dict(
    pretrained=None,  # the base's ResNetV1c checkpoint; weights come from the zoo instead
    backbone=_base_.pop("ssld_backbone"),
)
