# Baseline twin of deeplabv3plus_r50vd-ssld-d8_1xb4-1k_camvid-256x256.py: PaddleClas's ordinary
# ResNet50_vd weights instead of the SSLD ones.
_base_ = "./deeplabv3plus_r50vd-ssld-d8_1xb4-1k_camvid-256x256.py"
model = dict(backbone=dict(weights="resnet50_vd"))
