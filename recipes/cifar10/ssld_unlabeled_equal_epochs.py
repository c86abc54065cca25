"""CIFAR-10 reproduction, arm (c+): ssld_unlabeled.py for 30 epochs, as many as (b) takes.

This is (b)'s recipe with the unlabeled folder added and nothing else changed, as the paper adds its
mined images to the same schedule. So it takes 117 x 30 = 3,510 steps, 1.5x (b)'s. (c+) - (b) is the
paper's comparison; (c) - (b), at equal steps, says how much of it the images bring on their own.
"""

_base_ = ["./ssld_unlabeled.py"]

description = "CIFAR-10 reproduction (c+): SSLD label-free on train + unlabeled for (b)'s 30 epochs (1.5x its steps)"
train_cfg = dict(max_epochs=30)
export = dict(name="cifar10_ssld_unlabeled_equal_epochs")
