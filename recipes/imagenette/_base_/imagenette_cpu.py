# Imagenette (10 ImageNet classes, 144-px photos) at an ImageNet-like resolution, sized for a CPU:
# the data, schedule and runtime shared by the recipes of recipes/imagenette/ (run them all with
# benchmarks/reproduce_imagenette.py). The roots are relative to this file ({{ fileDirname }}):
# they reach ../shared/data/imagenette beside a checkout; elsewhere give them with --cfg-options
# (the reproduction script always does, from its --data).
_base_ = ["../../_base_/models/distiller.py", "../../_base_/default_runtime.py"]

imagenette = "{{ fileDirname }}/../../../../shared/data/imagenette"
train_dataloader = dict(
    batch_size=64,  # global batch
    num_workers=0,  # each arm runs on one core: a worker process would only take it from the step
    persistent_workers=False,
    pin_memory=False,
    drop_last=True,
    sampler=dict(type="EpochIndexSampler", shuffle=True),
    collate_fn=dict(type="collate_images"),
    dataset=dict(
        type="ImageDataset",
        labeled_roots=[imagenette + "/train"],  # 4,000 photos, 400 a class
        unlabeled_roots=[],
        classes=None,
        seed=0,
        # ImageNet's train view scaled to the 144-px photos: RandomResizedCrop to 112 px (the
        # issue's 112-128; the smaller end for the CPU budget) with ImageNet's 8-100% area, flip
        transform=dict(
            type="TrainViewTransform",
            input_size=112,
            scale=(0.08, 1.0),
            ratio=(3 / 4, 4 / 3),
            hflip=0.5,
            auto_augment=None,
            interpolation="bilinear",
        ),
    ),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
    collate_fn=dict(type="collate_images"),
    # 1,966 photos of the Imagenette val split; ImageNet's eval view scaled: resize 144, crop 128
    dataset=dict(
        type="ImageDataset",
        labeled_roots=[imagenette + "/val"],
        role="val root",
        transform=dict(
            type="ResizeCenterCrop", input_size=128, resize=144, interpolation="bilinear"
        ),
    ),
)
val_evaluator = dict(type="TopKAccuracy")

model = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # ImageNet's statistics
optim_wrapper = dict(
    type="auto_amp_optim_wrapper",
    amp="auto",
    optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=5e-5, nesterov=True),
)
# 12 epochs of the 4,000 train photos = 62 x 12 = 744 steps (drop_last). A linear warm-up from
# 10% over the first epoch, then cosine to zero.
param_scheduler = [
    dict(
        type="LinearLR", start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True
    ),
    dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=1, convert_to_iter_based=True),
]
train_cfg = dict(type="SkipEmptyBatchTrainLoop", max_epochs=12, val_interval=2)
val_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1), logger=dict(interval=20))
randomness = dict(seed=0)
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])  # no TensorBoard events
