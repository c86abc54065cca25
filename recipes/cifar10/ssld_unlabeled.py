"""CIFAR-10 reproduction, arm (c): SSLD without labels on train + 5,000 unlabeled images.

As ssld.py, with the unlabeled folder added to the stream: the paper's point that extra
unlabeled images, scored by the teacher, make a better student. Same epochs, so 1.5x the steps.
"""
_base_ = ["./ssld.py"]

description = "CIFAR-10 reproduction (c): SSLD label-free on train + unlabeled (15k images)"
data = dict(unlabeled_roots=["../shared/data/cifar10/unlabeled"])
export = dict(name="cifar10_ssld_unlabeled")
