"""SSLD stage 1: MobileNetV1 from ResNet50_vd_ssld (71.0 -> 77.9).

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md:
360 epochs, global batch 4096, lr 1.6 (cosine, warm-up), weight decay 3e-05, no label
smoothing, student from scratch, 224 px; MobileNet-family students learn from ResNet50_vd_ssld (82.4) (PaddleClas docs/zh_CN/training/advanced/ssld.md).
Published top-1 after stage 1: 77.65; after stage 2 (mv1_stage2.py): 77.9.
The loss is SSLD's symmetric KL (PaddleClas ppcls/loss/dmlloss.py), without labels.
"""

_base_ = "./_base_/ssld_stage1.py"

description = "MobileNetV1 from ResNet50_vd_ssld (71.0 -> 77.9)"
model = dict(teacher=dict(name="resnet50_vd_ssld"), student=dict(name="mobilenetv1"))
train_dataloader = dict(batch_size=4096)  # global batch
optim_wrapper = dict(optimizer=dict(lr=1.6, weight_decay=3e-05))
