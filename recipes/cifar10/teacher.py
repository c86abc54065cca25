"""CIFAR-10 reproduction, the teacher: ResNet18_vd trained with labels on the 10,000 train images.

The SSLD recipes of this folder distil from its export,
work_dirs/cifar10/teacher/cifar10_teacher.safetensors (benchmarks/reproduce_cifar10.py runs them
all and writes docs/reproduction.md's table).
"""
_base_ = ["./_base_/cifar10_cpu.py"]

description = "CIFAR-10 reproduction: the ResNet18_vd teacher, 40 epochs with labels on train (10k)"
teacher = None
student = dict(name="resnet18_vd", pretrained=False, num_classes=10)
hard_label_weight = 1.0
schedule = dict(epochs=40)
runtime = dict(val_interval=4)
export = dict(name="cifar10_teacher")
