# SSLD stage 2: a short fine-tune of the stage-1 student on ImageNet-1k with a small lr and no
# warm-up (PaddleClas distillation_en.md: 30 epochs for most students, 60 for ResNet50_vd).
# AMP = bf16 where supported, else fp16, on a GPU; fp32 on a CPU
optim_wrapper = dict(
    type="auto_amp_optim_wrapper",
    amp="auto",
    optimizer=dict(type="SGD", lr=0.004, momentum=0.9, weight_decay=7e-5, nesterov=False),
)
param_scheduler = [
    dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=0, convert_to_iter_based=True)
]
train_cfg = dict(type="SkipEmptyBatchTrainLoop", max_epochs=30, val_interval=1)
val_cfg = dict()
