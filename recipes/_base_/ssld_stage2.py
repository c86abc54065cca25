# What every paper recipe's SSLD stage 2 shares: fine-tune the stage-1 student on labeled
# ImageNet-1k (30 epochs, finetune_30e.py), still distilling from the same frozen teacher with
# SSLD's symmetric KL and no labels (set model.hard_label_weight > 0 to add cross-entropy on
# them); a checkpoint every 5 epochs, validation every epoch, a log line every 100 steps. A recipe
# names the teacher and the stage-1 export and sets the global batch, lr and weight decay.
_base_ = [
    "./datasets/imagenet_1k.py",
    "./schedules/finetune_30e.py",
    "./models/distiller.py",
    "./default_runtime.py",
]

model = dict(
    teacher=dict(type="ZooModel", pretrained=True, bn_mode="eval"),
    student=dict(type="ZooModel"),
    loss=dict(type="SymmetricKL"),
    hard_label_weight=0.0,
)
train_cfg = dict(val_interval=1)
default_hooks = dict(checkpoint=dict(interval=5), logger=dict(interval=100))
