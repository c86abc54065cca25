"""SSLD stage 2 of mv1.py: fine-tune the stage-1 student on labeled ImageNet-1k.

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md: 30 epochs, lr 0.016, global batch 4096 (the table gives no other); published top-1 after
stage 2: 77.89. PaddleClas keeps distilling from the same teacher in this stage; labels are
available here, so set hard_label_weight > 0 to add cross-entropy on them.
Set the stage-1 export: --cfg-options model.student.weights=work_dirs/mv1/mobilenetv1_mv1.safetensors
"""

_base_ = "./_base_/ssld_stage2.py"

description = "Stage 2 of mv1: 30-epoch ImageNet-1k fine-tune of the stage-1 mobilenetv1, lr 0.016"
model = dict(
    teacher=dict(name="resnet50_vd_ssld"),
    student=dict(name="mobilenetv1", weights="work_dirs/mv1/mobilenetv1_mv1.safetensors"),
)
train_dataloader = dict(batch_size=4096)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.016, weight_decay=3e-05))
