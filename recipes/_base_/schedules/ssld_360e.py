# SSLD stage 1: 360 epochs, SGD momentum 0.9, cosine with a linear warm-up from 1% over 5
# epochs, no label smoothing (PaddleClas docs/en/advanced_tutorials/distillation/
# distillation_en.md; warm-up as the PP-HGNetV2 SSLD stage-1 configs). Recipes set lr, weight
# decay and the global batch.
# AMP = bf16 where supported, else fp16, on a GPU; fp32 on a CPU
optim_wrapper = dict(
    type="auto_amp_optim_wrapper",
    amp="auto",
    optimizer=dict(type="SGD", lr=0.4, momentum=0.9, weight_decay=7e-5, nesterov=False),
)
param_scheduler = [
    dict(
        type="LinearLR",
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True,
    ),
    dict(
        type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=5, convert_to_iter_based=True
    ),  # to train_cfg.max_epochs
]
# mmengine's epoch loop, skipping a batch left with no readable image
train_cfg = dict(type="SkipEmptyBatchTrainLoop", max_epochs=360, val_interval=1)
val_cfg = dict()
