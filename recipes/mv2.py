"""SSLD stage 1: MobileNetV2 from ResNet50_vd_ssld (72.2 -> 76.74).

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md:
360 epochs, global batch 3072, lr 0.54 (cosine, warm-up), weight decay 1e-05, no label
smoothing, student from scratch, 224 px; MobileNet-family students learn from ResNet50_vd_ssld (82.4) (PaddleClas docs/zh_CN/training/advanced/ssld.md).
Published top-1 after stage 1: 76.34; after stage 2 (mv2_stage2.py): 76.74.
The loss is SSLD's symmetric KL (PaddleClas ppcls/loss/dmlloss.py), without labels.
"""

_base_ = "./_base_/ssld_stage1.py"

description = "MobileNetV2 from ResNet50_vd_ssld (72.2 -> 76.74)"
model = dict(teacher=dict(name="resnet50_vd_ssld"), student=dict(name="mobilenetv2"))
train_dataloader = dict(batch_size=3072)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.54, weight_decay=1e-05))
