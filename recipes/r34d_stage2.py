"""SSLD stage 2 of r34d.py: fine-tune the stage-1 student on labeled ImageNet-1k.

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md (ResNet34_vd is not in its table: ResNet50_vd's hyper-parameters): 30 epochs, lr 0.004, global batch 1024 (the table gives no other); published top-1 after
stage 2: 79.7. PaddleClas keeps distilling from the same teacher in this stage; labels are
available here, so set hard_label_weight > 0 to add cross-entropy on them.
Set the stage-1 export: --cfg-options model.student.weights=work_dirs/r34d/resnet34_vd_r34d.safetensors
"""

_base_ = "./_base_/ssld_stage2.py"

description = "Stage 2 of r34d: 30-epoch ImageNet-1k fine-tune of the stage-1 resnet34_vd, lr 0.004"
model = dict(
    teacher=dict(name="resnext101_32x16d_wsl"),
    student=dict(name="resnet34_vd", weights="work_dirs/r34d/resnet34_vd_r34d.safetensors"),
)
train_dataloader = dict(batch_size=1024)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.004, weight_decay=7e-05))
