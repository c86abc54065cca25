# What every paper recipe's SSLD stage 1 shares (PaddleClas
# docs/en/advanced_tutorials/distillation/distillation_en.md): ImageNet-1k + mined ImageNet-22k,
# the 360-epoch schedule, a frozen pretrained teacher (BN in eval mode), a student from scratch,
# SSLD's symmetric KL without labels; a checkpoint every 10 epochs plus the best, validation
# every 5 epochs, a log line every 100 steps. A recipe names the teacher and student and sets
# the global batch, lr and weight decay.
_base_ = [
    "./datasets/imagenet_5m.py",
    "./schedules/ssld_360e.py",
    "./models/distiller.py",
    "./default_runtime.py",
]

model = dict(
    teacher=dict(type="ZooModel", pretrained=True, bn_mode="eval"),
    student=dict(type="ZooModel", pretrained=False),
    loss=dict(type="SymmetricKL"),
    hard_label_weight=0.0,
)
train_cfg = dict(val_interval=5)
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=100))
