"""CIFAR-10 reproduction, loss ablation: cross-entropy against the teacher's probabilities
(T=1), otherwise as ssld_unlabeled.py (no labels, train + unlabeled)."""

_base_ = ["./ssld_unlabeled.py"]

description = "CIFAR-10 loss ablation: soft-target cross-entropy (train + unlabeled, no labels)"
model = dict(loss=dict(type="SoftTargetCE"))
export = dict(name="cifar10_ablation_soft_ce")
