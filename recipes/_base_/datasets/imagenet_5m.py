# SSLD stage-1 data: ImageNet-1k train + ImageNet-22k images mined with the teacher ("ImageNet_5M").
# PaddleClas docs/zh_CN/training/advanced/ssld.md: ImageNet-22k minus images similar to the
# ImageNet-1k val set, scored by the teacher, top-k per ImageNet-1k class, merged with ImageNet-1k
# train (about 5M images). Build the list with:
#   ssld-zoo mine --teacher resnext101_32x16d_wsl --pool /data/imagenet22k --per-class 4000 \
#       --out /data/imagenet22k_mined.txt
# The roots below are placeholders: give yours on the command line, e.g.
#   --cfg-options train_dataloader.dataset.labeled_roots="['/data/imagenet/train']" \
#       val_dataloader.dataset.labeled_roots="['/data/imagenet/val']"
train_dataloader = dict(
    batch_size=256,  # the GLOBAL batch: ssld-zoo distill splits it over the processes
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    # (epoch, index) keys: each sample's augmentation is seeded by (seed, epoch, index)
    sampler=dict(type="EpochIndexSampler", shuffle=True),
    collate_fn=dict(type="collate_images"),
    dataset=dict(
        type="ImageDataset",
        labeled_roots=["/data/imagenet/train"],
        unlabeled_roots=["/data/imagenet22k_mined.txt"],
        classes=None,
        seed=0,
        # SSLD trains and evaluates at 224 (distillation_en.md); uint8 crops, normalised on the
        # device by each model
        transform=dict(
            type="TrainViewTransform",
            input_size=224,
            scale=(0.08, 1.0),
            ratio=(3 / 4, 4 / 3),
            hflip=0.5,
            auto_augment=None,
            interpolation="bilinear",
            resize=None,
        ),
    ),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),  # no image twice
    collate_fn=dict(type="collate_images"),
    dataset=dict(
        type="ImageDataset",
        labeled_roots=["/data/imagenet/val"],
        role="val root",
        transform=dict(
            type="ResizeCenterCrop", input_size=224, resize=256, interpolation="bilinear"
        ),
    ),
)
val_evaluator = dict(type="TopKAccuracy")  # top-1/top-5 of the student (and teacher, once)
