# Mask R-CNN FPN 1x on COCO with PaddleClas's ResNet50_vd SSLD weights, with PaddleDetection's SSLD
# backbone recipe: stem and stage 0 frozen, BN statistics frozen, per-stage lr multipliers
# [0.05, 0.05, 0.1, 0.15]. PaddleDetection: 40.3 box / 36.4 mask AP with ResNet50_vd weights -> 42.0 / 38.2 with SSLD ones (docs/downstream.md).
# Baseline twin (ResNet50_vd's ordinary weights): mask-rcnn_r50vd_fpn_1x_coco.py
_base_ = ["mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py", "./_base_/r50vd_ssld_fpn.py"]

model = dict(backbone=_base_.pop("ssld_backbone"))
optim_wrapper = _base_.pop("ssld_optim_wrapper")
