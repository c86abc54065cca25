# RetinaNet FPN 1x on COCO with PaddleClas's MobileNetV3_large_x1_0 SSLD weights (79.0% top-1;
# ordinary weights 75.3%). The zoo's MobileNetV3 has five stages (strides 2, 4, 8, 16, 32);
# stages 2-4 (40, 112, 960 channels) feed the FPN, which adds P6/P7 for RetinaNet's strides
# 8..128. Per-stage lr multipliers follow PaddleClas's MobileNetV3 transfer recipe
# [0.25, 0.25, 0.5, 0.5, 0.75]. No published COCO number exists for this pair: compare with the
# baseline twin retinanet_mnv3l_fpn_1x_coco.py.
_base_ = ["mmdet::retinanet/retinanet_r50_fpn_1x_coco.py", "../_base_/ssld_backbone.py"]

model = dict(
    backbone=dict(
        _base_.pop("ssld_backbone"),
        model="mobilenetv3_large_x1_0",
        out_indices=(2, 3, 4),
        frozen_stages=1,
        norm_eval=True,
    ),
    neck=dict(in_channels=[40, 112, 960], start_level=0, add_extra_convs="on_input", num_outs=5),
)

optim_wrapper = dict(
    constructor="SSLDStageLrConstructor",
    paramwise_cfg=dict(
        custom_keys={
            "backbone.stem": dict(lr_mult=0.25),
            "backbone.stages.0": dict(lr_mult=0.25),
            "backbone.stages.1": dict(lr_mult=0.25),
            "backbone.stages.2": dict(lr_mult=0.5),
            "backbone.stages.3": dict(lr_mult=0.5),
            "backbone.stages.4": dict(lr_mult=0.75),
        }
    ),
)
