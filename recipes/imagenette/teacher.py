"""Imagenette reproduction, the teacher: ResNet18_vd trained with labels on the 4,000 train photos.

The SSLD recipes of this folder distil from its export,
work_dirs/imagenette/teacher/imagenette_teacher.safetensors (benchmarks/reproduce_imagenette.py
runs them all and writes docs/reproduction.md's Imagenette table).
"""

_base_ = ["./_base_/imagenette_cpu.py"]

description = (
    "Imagenette reproduction: the ResNet18_vd teacher, 18 epochs with labels on train (4k)"
)
model = dict(
    teacher=None,
    student=dict(type="ZooModel", name="resnet18_vd", pretrained=False, num_classes=10),
    hard_label_weight=1.0,
)
# RandAugment on top of the students' view: CIFAR-10 showed that a teacher which fits its training
# images tells a label-free student little more than the labels (docs/reproduction.md).
train_dataloader = dict(dataset=dict(transform=dict(auto_augment="rand-m9-n2")))
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
train_cfg = dict(max_epochs=18, val_interval=3)
export = dict(name="imagenette_teacher")
