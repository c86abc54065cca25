"""CIFAR-10 reproduction, loss ablation: Hinton's KL(t||s) at temperature 4 (x T^2), otherwise as
ssld_unlabeled.py (no labels, train + unlabeled)."""

_base_ = ["./ssld_unlabeled.py"]

description = (
    "CIFAR-10 loss ablation: KL at T=4 instead of symmetric KL (train + unlabeled, no labels)"
)
model = dict(loss=dict(type="KL", temperature=4.0))
export = dict(name="cifar10_ablation_kl")
