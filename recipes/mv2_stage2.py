"""SSLD stage 2 of mv2.py: fine-tune the stage-1 student on labeled ImageNet-1k.

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md: 30 epochs, lr 0.0054, global batch 3072 (the table gives no other); published top-1 after
stage 2: 76.73. PaddleClas keeps distilling from the same teacher in this stage; labels are
available here, so set hard_label_weight > 0 to add cross-entropy on them.
Set the stage-1 export: --cfg-options model.student.weights=work_dirs/mv2/mobilenetv2_mv2.safetensors
"""

_base_ = "./_base_/ssld_stage2.py"

description = "Stage 2 of mv2: 30-epoch ImageNet-1k fine-tune of the stage-1 mobilenetv2, lr 0.0054"
model = dict(
    teacher=dict(name="resnet50_vd_ssld"),
    student=dict(name="mobilenetv2", weights="work_dirs/mv2/mobilenetv2_mv2.safetensors"),
)
train_dataloader = dict(batch_size=3072)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.0054, weight_decay=1e-05))
