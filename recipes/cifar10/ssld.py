"""CIFAR-10 reproduction, arm (b): SSLD without labels on the train images.

The student of supervised.py learns only from the teacher's predictions (symmetric KL at T=1,
PaddleClas's DMLLoss) on the same 10,000 images; their labels are never read.
"""

_base_ = ["./_base_/cifar10_cpu.py"]

description = "CIFAR-10 reproduction (b): MobileNetV1_x0.5 SSLD label-free on train (10k) from the ResNet18_vd teacher"
model = dict(
    teacher=dict(
        type="ZooModel",
        name="resnet18_vd",
        num_classes=10,
        bn_mode="eval",
        weights="work_dirs/cifar10/teacher/cifar10_teacher.safetensors",
    ),
    student=dict(type="ZooModel", name="mobilenetv1_x0_5", pretrained=False, num_classes=10),
    loss=dict(type="SymmetricKL"),
    hard_label_weight=0.0,
)
export = dict(name="cifar10_ssld")
