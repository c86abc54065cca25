# Baseline twin of fcn_r50vd-ssld-d8_4xb2-80k_cityscapes-512x1024.py: same architecture and schedule, PaddleClas's ordinary ResNet50_vd
# ImageNet weights (79.1% top-1) instead of the SSLD ones (83.0%).
_base_ = "./fcn_r50vd-ssld-d8_4xb2-80k_cityscapes-512x1024.py"
model = dict(backbone=dict(weights="resnet50_vd"))
