# Baseline twin of faster-rcnn_r50vd-ssld_fpn_1x_coco-mini.py: PaddleClas's ordinary
# ResNet50_vd weights instead of the SSLD ones.
_base_ = "./faster-rcnn_r50vd-ssld_fpn_1x_coco-mini.py"
model = dict(backbone=dict(weights="resnet50_vd"))
