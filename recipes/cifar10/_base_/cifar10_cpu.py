# CIFAR-10 at its native 32 px, sized for a CPU: the data, schedule and runtime shared by the
# reproduction recipes in recipes/cifar10/ (run them all with benchmarks/reproduce_cifar10.py).
# The roots are relative to this file ({{ fileDirname }}): they reach ../shared/data/cifar10
# beside a checkout. Elsewhere give them on the command line, e.g.
#   --cfg-options train_dataloader.dataset.labeled_roots="['/data/cifar10/train']" \
#       val_dataloader.dataset.labeled_roots="['/data/cifar10/val']"
# (the unlabeled recipes also set train_dataloader.dataset.unlabeled_roots).
_base_ = ["../../_base_/models/distiller.py", "../../_base_/default_runtime.py"]

cifar10 = "{{ fileDirname }}/../../../../shared/data/cifar10"
train_dataloader = dict(
    batch_size=128,  # global batch
    num_workers=0,  # 32 px JPEGs decode faster than a worker process starts
    persistent_workers=False,
    pin_memory=False,
    drop_last=True,
    sampler=dict(type="EpochIndexSampler", shuffle=True),
    collate_fn=dict(type="collate_images"),
    dataset=dict(
        type="ImageDataset",
        labeled_roots=[cifar10 + "/train"],  # 10,000 images, 1,000 a class
        unlabeled_roots=[],
        classes=None,
        seed=0,
        # milder crops than ImageNet's 0.08: a 32 px image has little to spare
        transform=dict(
            type="TrainViewTransform",
            input_size=32,
            resize=32,
            scale=(0.5, 1.0),
            ratio=(3 / 4, 4 / 3),
            hflip=0.5,
            auto_augment=None,
            interpolation="bilinear",
        ),
    ),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
    collate_fn=dict(type="collate_images"),
    # 5,000 images of the CIFAR-10 test split
    dataset=dict(
        type="ImageDataset",
        labeled_roots=[cifar10 + "/val"],
        role="val root",
        transform=dict(type="ResizeCenterCrop", input_size=32, resize=32, interpolation="bilinear"),
    ),
)
val_evaluator = dict(type="TopKAccuracy")

# CIFAR-10's own statistics normalise both models
model = dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
optim_wrapper = dict(
    type="auto_amp_optim_wrapper",
    amp="auto",
    optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
)
# 30 epochs of the 10,000 train images = 78 x 30 = 2,340 steps (drop_last); the recipes that add
# the 5,000 unlabeled images take the same steps in 20 epochs, so every student arm trains as
# long. A linear warm-up from 10% over the first epoch, then cosine to the last.
param_scheduler = [
    dict(
        type="LinearLR", start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True
    ),
    dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=1, convert_to_iter_based=True),
]
train_cfg = dict(type="SkipEmptyBatchTrainLoop", max_epochs=30, val_interval=3)
val_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1), logger=dict(interval=20))
randomness = dict(seed=0)
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])  # no TensorBoard events
