# Baseline twin of retinanet_r50vd-ssld_fpn_1x_coco.py: same architecture and recipe,
# PaddleClas's ordinary ResNet50_vd ImageNet weights (79.1% top-1) instead of the SSLD ones.
_base_ = "./retinanet_r50vd-ssld_fpn_1x_coco.py"
model = dict(backbone=dict(weights="resnet50_vd"))
