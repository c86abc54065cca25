# Faster R-CNN FPN 1x on COCO with PaddleClas's ResNet50_vd SSLD weights (83.0% ImageNet top-1),
# set up as PaddleDetection's faster_rcnn_r50_vd_ssld_v2_fpn_1x_coco: stem and stage 0 frozen
# (freeze_at=0), BN statistics frozen, per-stage lr multipliers [0.05, 0.05, 0.1, 0.15].
# PaddleDetection: 39.5 box AP with ResNet50_vd weights -> 41.4 with SSLD ones (docs/downstream.md).
# Baseline twin (same recipe, ResNet50_vd's ordinary weights): faster-rcnn_r50vd_fpn_1x_coco.py
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['ssld_zoo.adapters.mmlab'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SSLDBackbone',
        model='resnet50_vd',
        weights='ssld',  # resnet50_vd_ssld; a file path or a registered weight name works too
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True))

# Stage names are the adapter's (backbone.stem, backbone.stages.<i>), whatever the family's
# module names; the constructor maps them (ssld_zoo.adapters.mmlab.SSLDStageLrConstructor).
optim_wrapper = dict(
    constructor='SSLDStageLrConstructor',
    paramwise_cfg=dict(custom_keys={
        'backbone.stem': dict(lr_mult=0.05),
        'backbone.stages.0': dict(lr_mult=0.05),
        'backbone.stages.1': dict(lr_mult=0.05),
        'backbone.stages.2': dict(lr_mult=0.1),
        'backbone.stages.3': dict(lr_mult=0.15),
    }))
