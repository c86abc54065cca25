"""SSLD stage 2 of r50d_v2.py: fine-tune the stage-1 student on labeled ImageNet-1k.

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md (ResNet50_vd_ssld_v2 paragraph: + AutoAugment, weight decay 2e-5): 60 epochs, lr 0.004, global batch 1024 (the table gives no other); published top-1 after
stage 2: 82.99. PaddleClas keeps distilling from the same teacher in this stage; labels are
available here, so set hard_label_weight > 0 to add cross-entropy on them.
Set the stage-1 export: --cfg-options model.student.weights=work_dirs/r50d_v2/resnet50_vd_r50d_v2.safetensors
"""

_base_ = "./_base_/ssld_stage2.py"

description = (
    "Stage 2 of r50d_v2: 60-epoch ImageNet-1k fine-tune of the stage-1 resnet50_vd, lr 0.004"
)
model = dict(
    teacher=dict(name="resnext101_32x16d_wsl"),
    student=dict(name="resnet50_vd", weights="work_dirs/r50d_v2/resnet50_vd_r50d_v2.safetensors"),
)
train_dataloader = dict(
    batch_size=1024, dataset=dict(transform=dict(auto_augment="imagenet"))
)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.004, weight_decay=2e-05))
train_cfg = dict(max_epochs=60)
