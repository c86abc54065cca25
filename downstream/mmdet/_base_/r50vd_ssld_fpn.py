# PaddleDetection's SSLD backbone recipe (faster_rcnn_r50_vd_ssld_v2_fpn_1x_coco), shared by the
# R50-vd detection configs: stem and stage 0 frozen (freeze_at=0), BN statistics frozen,
# per-stage lr multipliers [0.05, 0.05, 0.1, 0.15]. Building block, not a config to train:
#     _base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', './_base_/r50vd_ssld_fpn.py']
#     model = dict(backbone=_base_.pop('ssld_backbone'))
#     optim_wrapper = _base_.pop('ssld_optim_wrapper')
# (the names of their own, and the pop, as in ../../_base_/ssld_backbone.py).
_base_ = "../../_base_/ssld_backbone.py"

ssld_backbone = dict(frozen_stages=1, norm_eval=True)

# Stage names are the adapter's (backbone.stem, backbone.stages.<i>), whatever the family's
# module names; the constructor maps them (ssld_zoo.adapters.mmlab.SSLDStageLrConstructor).
ssld_optim_wrapper = dict(
    constructor="SSLDStageLrConstructor",
    paramwise_cfg=dict(
        custom_keys={
            "backbone.stem": dict(lr_mult=0.05),
            "backbone.stages.0": dict(lr_mult=0.05),
            "backbone.stages.1": dict(lr_mult=0.05),
            "backbone.stages.2": dict(lr_mult=0.1),
            "backbone.stages.3": dict(lr_mult=0.15),
        }
    ),
)
