# Imagenette (10 ImageNet classes, 144-px photos) at an ImageNet-like resolution, sized for a CPU:
# the data, schedule and runtime shared by the recipes of recipes/imagenette/ (run them all with
# benchmarks/reproduce_imagenette.py). The roots are relative to this file ({{ fileDirname }}):
# they reach ../shared/data/imagenette beside a checkout; elsewhere give them with --cfg-options
# (the reproduction script always does, from its --data).
_base_ = [
    "../../_base_/models/distiller.py",
    "../../_base_/datasets/folders_cpu.py",
    "../../_base_/schedules/warmup_cosine_cpu.py",
    "../../_base_/default_runtime.py",
]

imagenette = "{{ fileDirname }}/../../../../shared/data/imagenette"
train_dataloader = dict(
    batch_size=64,  # global batch
    dataset=dict(
        labeled_roots=[imagenette + "/train"],  # 4,000 photos, 400 a class
        # ImageNet's train view scaled to the 144-px photos: RandomResizedCrop to 112 px (the
        # issue's 112-128; the smaller end for the CPU budget) with ImageNet's 8-100% area, flip
        transform=dict(input_size=112, scale=(0.08, 1.0)),
    ),
)
val_dataloader = dict(
    batch_size=128,
    # 1,966 photos of the Imagenette val split; ImageNet's eval view scaled: resize 144, crop 128
    dataset=dict(labeled_roots=[imagenette + "/val"], transform=dict(input_size=128, resize=144)),
)

model = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # ImageNet's statistics
optim_wrapper = dict(optimizer=dict(weight_decay=5e-5))
# 12 epochs of the 4,000 train photos = 62 x 12 = 744 steps (drop_last)
train_cfg = dict(max_epochs=12, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1), logger=dict(interval=20))
randomness = dict(seed=0)
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])  # no TensorBoard events
