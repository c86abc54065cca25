# DeepLabV3+ (output stride 8) on Cityscapes, 80k iterations, with PaddleClas's ResNet50_vd SSLD weights (83.0% ImageNet top-1). PaddleSeg reaches 80.36 mIoU with this backbone and weights (docs/downstream.md).
# Baseline twin (ResNet50_vd's ordinary weights, 79.1%): deeplabv3plus_r50vd-d8_4xb2-80k_cityscapes-512x1024.py
_base_ = [
    "mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py",
    "./_base_/ssld_backbone.py",
]

model = dict(
    pretrained=None,  # the base's ResNetV1c checkpoint; weights come from the zoo instead
    backbone=dict(_base_.pop("ssld_backbone"), output_stride=8),
)  # os8: dilated stages 2-3, as PaddleSeg's ResNet50_vd
