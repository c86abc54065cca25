"""CIFAR-10 reproduction, the teacher: ResNet18_vd trained with labels on the 10,000 train images.

The SSLD recipes of this folder distil from its export,
work_dirs/cifar10/teacher/cifar10_teacher.safetensors (benchmarks/reproduce_cifar10.py runs them
all and writes docs/reproduction.md's table).
"""

_base_ = ["./_base_/cifar10_cpu.py"]

description = "CIFAR-10 reproduction: the ResNet18_vd teacher, 40 epochs with labels on train (10k)"
model = dict(
    teacher=None,
    student=dict(type="ZooModel", name="resnet18_vd", pretrained=False, num_classes=10),
    hard_label_weight=1.0,
)
# Heavier augmentation than the students' (RandAugment, crops down to a quarter of the image):
# with the students' mild crops the teacher fits its 10,000 training images (train loss 0.29,
# 91% top-1 on their crops vs 71% on val's), so on those images its predictions are little more
# than the labels and label-free SSLD on train has nothing to add to supervised training.
train_dataloader = dict(dataset=dict(transform=dict(scale=(0.25, 1.0), auto_augment="rand-m9-n2")))
train_cfg = dict(max_epochs=40, val_interval=4)
export = dict(name="cifar10_teacher")
