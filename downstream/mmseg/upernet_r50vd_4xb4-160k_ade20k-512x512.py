# Baseline twin of upernet_r50vd-ssld_4xb4-160k_ade20k-512x512.py: same architecture and schedule, PaddleClas's ordinary ResNet50_vd
# ImageNet weights (79.1% top-1) instead of the SSLD ones (83.0%).
_base_ = "./upernet_r50vd-ssld_4xb4-160k_ade20k-512x512.py"
model = dict(backbone=dict(weights="resnet50_vd"))
