# SSLD stage-2 data: labeled ImageNet-1k train only (PaddleClas
# docs/en/advanced_tutorials/distillation/distillation_en.md, "finetune on ImageNet-1k").
_base_ = ["./imagenet_5m.py"]
train_dataloader = dict(dataset=dict(unlabeled_roots=[]))
