"""CIFAR-10 reproduction, arm (c): SSLD without labels on train + 5,000 unlabeled images.

As ssld.py, with the unlabeled folder added to the stream: the paper's point that extra
unlabeled images, scored by the teacher, make a better student. 20 epochs over 15,000 images are
117 x 20 = 2,340 optimiser steps, the 78 x 30 of the 10,000-image arms: (c) - (b) is what the
unlabeled images bring, not more training.
"""

_base_ = ["./ssld.py"]

description = "CIFAR-10 reproduction (c): SSLD label-free on train + unlabeled (15k images), same steps as (b)"
train_dataloader = dict(
    dataset=dict(unlabeled_roots=["{{ fileDirname }}/../../../shared/data/cifar10/unlabeled"])
)
train_cfg = dict(max_epochs=20)
export = dict(name="cifar10_ssld_unlabeled")
