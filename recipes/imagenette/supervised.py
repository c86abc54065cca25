"""Imagenette reproduction, arm (a): the student trained with labels on train, no teacher.

The baseline every SSLD arm is compared with: same architecture, initialisation, data order,
augmentation and schedule; only the loss differs (cross-entropy on the human labels).
"""

_base_ = ["./_base_/imagenette_cpu.py"]

description = (
    "Imagenette reproduction (a): PP-LCNet_x0.5 supervised on train (4k labels), the baseline"
)
model = dict(
    teacher=None,
    student=dict(type="ZooModel", name="pplcnet_x0_5", pretrained=False, num_classes=10),
    hard_label_weight=1.0,
)
export = dict(name="imagenette_supervised")
