"""SSLD stage 1: MobileNetV3_large_x1_0 from ResNet50_vd_ssld (75.3 -> 79.0).

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md:
360 epochs, global batch 5760, lr 3.65625 (cosine, warm-up), weight decay 1e-05, no label
smoothing, student from scratch, 224 px; MobileNet-family students learn from ResNet50_vd_ssld (82.4) (PaddleClas docs/zh_CN/training/advanced/ssld.md).
Published top-1 after stage 1: 78.54; after stage 2 (mv3_large_stage2.py): 79.0.
The loss is SSLD's symmetric KL (PaddleClas ppcls/loss/dmlloss.py), without labels.
"""

_base_ = "./_base_/ssld_stage1.py"

description = "MobileNetV3_large_x1_0 from ResNet50_vd_ssld (75.3 -> 79.0)"
model = dict(teacher=dict(name="resnet50_vd_ssld"), student=dict(name="mobilenetv3_large_x1_0"))
train_dataloader = dict(batch_size=5760)  # global batch
optim_wrapper = dict(optimizer=dict(lr=3.65625, weight_decay=1e-05))
