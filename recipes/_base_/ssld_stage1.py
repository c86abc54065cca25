# What every paper recipe's SSLD stage 1 shares (PaddleClas
# docs/en/advanced_tutorials/distillation/distillation_en.md): ImageNet-1k + mined ImageNet-22k,
# the 360-epoch schedule, a frozen pretrained teacher (BN in eval mode), a student from scratch,
# SSLD's symmetric KL without labels. A recipe names the teacher and student and sets the global
# batch, lr and weight decay.
_base_ = ["./datasets/imagenet_5m.py", "./schedules/ssld_360e.py", "./default_runtime.py"]

teacher = dict(pretrained=True, bn_mode="eval")
student = dict(pretrained=False)
loss = dict(type="SymmetricKL")
hard_label_weight = 0.0
