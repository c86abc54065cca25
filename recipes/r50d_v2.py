"""SSLD stage 1: ResNet50_vd_ssld_v2: as r50d plus AutoAugment and weight decay 2e-5 (82.99).

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md (ResNet50_vd_ssld_v2 paragraph: + AutoAugment, weight decay 2e-5):
360 epochs, global batch 1024, lr 0.4 (cosine, warm-up), weight decay 2e-05, no label
smoothing, student from scratch, 224 px; ResNet-family students learn from ResNeXt101_32x16d_wsl (84.2) (PaddleClas docs/zh_CN/training/advanced/ssld.md).
Published top-1 after stage 1: not published separately; after stage 2 (r50d_v2_stage2.py): 82.99.
The loss is SSLD's symmetric KL (PaddleClas ppcls/loss/dmlloss.py), without labels.
"""

_base_ = "./_base_/ssld_stage1.py"

description = "ResNet50_vd_ssld_v2: as r50d plus AutoAugment and weight decay 2e-5 (82.99)"
model = dict(teacher=dict(name="resnext101_32x16d_wsl"), student=dict(name="resnet50_vd"))
train_dataloader = dict(
    batch_size=1024, dataset=dict(transform=dict(auto_augment="imagenet"))
)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.4, weight_decay=2e-05))
