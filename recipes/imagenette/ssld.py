"""Imagenette reproduction, arm (b): SSLD without labels on the train photos.

The student of supervised.py learns only from the teacher's predictions (symmetric KL at T=1,
PaddleClas's DMLLoss) on the same 4,000 photos; their labels are never read.
"""

_base_ = ["./_base_/imagenette_cpu.py"]

description = "Imagenette reproduction (b): PP-LCNet_x0.5 SSLD label-free on train (4k) from the ResNet18_vd teacher"
model = dict(
    teacher=dict(
        type="ZooModel",
        name="resnet18_vd",
        num_classes=10,
        bn_mode="eval",
        weights="work_dirs/imagenette/teacher/imagenette_teacher.safetensors",
    ),
    student=dict(type="ZooModel", name="pplcnet_x0_5", pretrained=False, num_classes=10),
    loss=dict(type="SymmetricKL"),
    hard_label_weight=0.0,
)
export = dict(name="imagenette_ssld")
