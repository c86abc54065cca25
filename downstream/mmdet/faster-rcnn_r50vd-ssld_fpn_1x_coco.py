# Faster R-CNN FPN 1x on COCO with PaddleClas's ResNet50_vd SSLD weights (83.0% ImageNet top-1),
# set up as PaddleDetection's faster_rcnn_r50_vd_ssld_v2_fpn_1x_coco: stem and stage 0 frozen
# (freeze_at=0), BN statistics frozen, per-stage lr multipliers [0.05, 0.05, 0.1, 0.15].
# PaddleDetection: 39.5 box AP with ResNet50_vd weights -> 41.4 with SSLD ones (docs/downstream.md).
# Baseline twin (same recipe, ResNet50_vd's ordinary weights): faster-rcnn_r50vd_fpn_1x_coco.py
_base_ = ["mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "./_base_/r50vd_ssld_fpn.py"]

model = dict(backbone=_base_.pop("ssld_backbone"))
optim_wrapper = _base_.pop("ssld_optim_wrapper")
