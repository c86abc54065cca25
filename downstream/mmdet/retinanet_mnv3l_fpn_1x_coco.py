# Baseline twin of retinanet_mnv3l-ssld_fpn_1x_coco.py: PaddleClas's ordinary
# MobileNetV3_large_x1_0 weights (75.3% top-1) instead of the SSLD ones (79.0%).
_base_ = "./retinanet_mnv3l-ssld_fpn_1x_coco.py"
model = dict(backbone=dict(weights="mobilenetv3_large_x1_0"))
