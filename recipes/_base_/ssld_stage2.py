# What every paper recipe's SSLD stage 2 shares: fine-tune the stage-1 student on labeled
# ImageNet-1k (30 epochs, finetune_30e.py), still distilling from the same frozen teacher with
# SSLD's symmetric KL and no labels (set hard_label_weight > 0 to add cross-entropy on them); a
# checkpoint every 5 epochs, validation every epoch. A recipe names the teacher and the stage-1
# export and sets the global batch, lr and weight decay.
_base_ = ["./datasets/imagenet_1k.py", "./schedules/finetune_30e.py", "./default_runtime.py"]

teacher = dict(pretrained=True, bn_mode="eval")
loss = dict(type="SymmetricKL")
hard_label_weight = 0.0
runtime = dict(checkpoint_interval=5, val_interval=1)
