"""CIFAR-10 reproduction, arm (a): the student trained with labels on train, no teacher.

The baseline every SSLD arm is compared with: same architecture, initialisation, data order,
augmentation and schedule; only the loss differs (cross-entropy on the human labels).
"""

_base_ = ["./_base_/cifar10_cpu.py"]

description = (
    "CIFAR-10 reproduction (a): MobileNetV1_x0.5 supervised on train (10k labels), the baseline"
)
model = dict(
    teacher=None,
    student=dict(type="ZooModel", name="mobilenetv1_x0_5", pretrained=False, num_classes=10),
    hard_label_weight=1.0,
)
export = dict(name="cifar10_supervised")
