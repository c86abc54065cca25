# Image folders read in the training process itself, for the small CPU reproductions
# (recipes/cifar10/, recipes/imagenette/): each of their arms runs on one core, where a loader
# worker would only take that core from the step. A dataset's base sets the roots, the batch and
# the views (train_dataloader.dataset.transform, val_dataloader.dataset.transform).
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    drop_last=True,
    sampler=dict(type="EpochIndexSampler", shuffle=True),
    collate_fn=dict(type="collate_images"),
    dataset=dict(
        type="ImageDataset",
        unlabeled_roots=[],
        classes=None,
        seed=0,
        transform=dict(
            type="TrainViewTransform",
            ratio=(3 / 4, 4 / 3),
            hflip=0.5,
            auto_augment=None,
            interpolation="bilinear",
        ),
    ),
)
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
    collate_fn=dict(type="collate_images"),
    dataset=dict(
        type="ImageDataset",
        role="val root",
        transform=dict(type="ResizeCenterCrop", interpolation="bilinear"),
    ),
)
val_evaluator = dict(type="TopKAccuracy")
