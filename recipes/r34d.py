"""SSLD stage 1: ResNet34_vd from ResNeXt101_32x16d_wsl (ResNet34_vd_ssld, 76.0 -> 79.7).

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md (ResNet34_vd is not in its table: ResNet50_vd's hyper-parameters):
360 epochs, global batch 1024, lr 0.4 (cosine, warm-up), weight decay 7e-05, no label
smoothing, student from scratch, 224 px; ResNet-family students learn from ResNeXt101_32x16d_wsl (84.2) (PaddleClas docs/zh_CN/training/advanced/ssld.md).
Published top-1 after stage 1: not published separately; after stage 2 (r34d_stage2.py): 79.7.
The loss is SSLD's symmetric KL (PaddleClas ppcls/loss/dmlloss.py), without labels.
"""

_base_ = "./_base_/ssld_stage1.py"

description = "ResNet34_vd from ResNeXt101_32x16d_wsl (ResNet34_vd_ssld, 76.0 -> 79.7)"
model = dict(teacher=dict(name="resnext101_32x16d_wsl"), student=dict(name="resnet34_vd"))
train_dataloader = dict(batch_size=1024)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.4, weight_decay=7e-05))
