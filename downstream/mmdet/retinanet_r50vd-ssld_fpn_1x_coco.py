# RetinaNet FPN 1x on COCO with PaddleClas's ResNet50_vd SSLD weights, with PaddleDetection's SSLD
# backbone recipe: stem and stage 0 frozen, BN statistics frozen, per-stage lr multipliers
# [0.05, 0.05, 0.1, 0.15]. PaddleDetection: no published SSLD number; the per-stage recipe is the Faster R-CNN one (docs/downstream.md).
# Baseline twin (ResNet50_vd's ordinary weights): retinanet_r50vd_fpn_1x_coco.py
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['ssld_zoo.adapters.mmlab'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SSLDBackbone',
        model='resnet50_vd',
        weights='ssld',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True))

optim_wrapper = dict(
    constructor='SSLDStageLrConstructor',
    paramwise_cfg=dict(custom_keys={
        'backbone.stem': dict(lr_mult=0.05),
        'backbone.stages.0': dict(lr_mult=0.05),
        'backbone.stages.1': dict(lr_mult=0.05),
        'backbone.stages.2': dict(lr_mult=0.1),
        'backbone.stages.3': dict(lr_mult=0.15),
    }))
