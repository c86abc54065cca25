"""SSLD stage 2 of mv3_small.py: fine-tune the stage-1 student on labeled ImageNet-1k.

Hyper-parameters: PaddleClas docs/en/advanced_tutorials/distillation/distillation_en.md: 30 epochs, lr 0.025, global batch 6400; published top-1 after
stage 2: 71.28. PaddleClas keeps distilling from the same teacher in this stage; labels are
available here, so set hard_label_weight > 0 to add cross-entropy on them.
Set the stage-1 export: --cfg-options model.student.weights=work_dirs/mv3_small/mobilenetv3_small_x1_0_mv3_small.safetensors
"""

_base_ = "./_base_/ssld_stage2.py"

description = "Stage 2 of mv3_small: 30-epoch ImageNet-1k fine-tune of the stage-1 mobilenetv3_small_x1_0, lr 0.025"
model = dict(
    teacher=dict(name="resnet50_vd_ssld"),
    student=dict(
        name="mobilenetv3_small_x1_0",
        weights="work_dirs/mv3_small/mobilenetv3_small_x1_0_mv3_small.safetensors",
    ),
)
train_dataloader = dict(batch_size=6400)  # global batch
optim_wrapper = dict(optimizer=dict(lr=0.025, weight_decay=1e-05))
