"""SSLD stage 1: ResNet50_vd from ResNeXt101_32x16d_wsl: 360 epochs on ImageNet-1k + mined ImageNet-22k (the paper's ResNet50_vd_ssld, 79.1 -> 83.0).

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md:
360 epochs, global batch 1024, lr 0.4 (cosine, warm-up), weight decay 7e-05, no label
smoothing, student from scratch, 224 px; ResNet-family students learn from ResNeXt101_32x16d_wsl (84.2) (PaddleClas docs/zh_CN/training/advanced/ssld.md).
Published top-1 after stage 1: 82.07; after stage 2 (r50d_stage2.py): 83.0.
The loss is SSLD's symmetric KL (PaddleClas ppcls/loss/dmlloss.py), without labels.
"""

_base_ = "./_base_/ssld_stage1.py"

description = (
    "ResNet50_vd from ResNeXt101_32x16d_wsl: 360 epochs on ImageNet-1k + mined ImageNet-22k "
    "(the paper's ResNet50_vd_ssld, 79.1 -> 83.0)"
)
model = dict(teacher=dict(name="resnext101_32x16d_wsl"), student=dict(name="resnet50_vd"))
train_dataloader = dict(batch_size=1024)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.4, weight_decay=7e-05))
