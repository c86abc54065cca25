"""CIFAR-10 reproduction, control arm (b'): ssld.py for 45 epochs instead of 30, i.e. as many
optimiser steps as ssld_unlabeled.py takes over 15,000 images in 30 epochs. (c) - (b') is the gain
from the unlabeled images alone, not from the extra steps they bring."""
_base_ = ["./ssld.py"]

description = "CIFAR-10 reproduction (b'): SSLD label-free on train for 45 epochs, the step count of (c)"
schedule = dict(epochs=45)
export = dict(name="cifar10_ssld_equal_steps")
