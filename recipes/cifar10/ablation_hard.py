"""CIFAR-10 reproduction, loss ablation: hard labels from the teacher (cross-entropy on its
arg-max, the dark knowledge thrown away), otherwise as ssld_unlabeled.py (no human labels,
train + unlabeled). Human hard labels are arm (a), supervised.py."""

_base_ = ["./ssld_unlabeled.py"]

description = (
    "CIFAR-10 loss ablation: the teacher's hard pseudo-labels (train + unlabeled, no human labels)"
)
model = dict(loss=dict(type="PseudoLabelCE"))
export = dict(name="cifar10_ablation_hard")
