# CIFAR-10 at its native 32 px, sized for a CPU: the data, schedule and runtime shared by the
# reproduction recipes in recipes/cifar10/ (run them all with benchmarks/reproduce_cifar10.py).
# The roots are relative to this file ({{ fileDirname }}): they reach ../shared/data/cifar10
# beside a checkout. Elsewhere give them on the command line, e.g.
#   --cfg-options train_dataloader.dataset.labeled_roots="['/data/cifar10/train']" \
#       val_dataloader.dataset.labeled_roots="['/data/cifar10/val']"
# (the unlabeled recipes also set train_dataloader.dataset.unlabeled_roots).
_base_ = [
    "../../_base_/models/distiller.py",
    "../../_base_/datasets/folders_cpu.py",
    "../../_base_/schedules/warmup_cosine_cpu.py",
    "../../_base_/default_runtime.py",
]

cifar10 = "{{ fileDirname }}/../../../../shared/data/cifar10"
train_dataloader = dict(
    batch_size=128,  # global batch
    dataset=dict(
        labeled_roots=[cifar10 + "/train"],  # 10,000 images, 1,000 a class
        # milder crops than ImageNet's 0.08: a 32 px image has little to spare
        transform=dict(input_size=32, resize=32, scale=(0.5, 1.0)),
    ),
)
val_dataloader = dict(
    batch_size=500,
    # 5,000 images of the CIFAR-10 test split
    dataset=dict(labeled_roots=[cifar10 + "/val"], transform=dict(input_size=32, resize=32)),
)

# CIFAR-10's own statistics normalise both models
model = dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
optim_wrapper = dict(optimizer=dict(weight_decay=5e-4))
# 30 epochs of the 10,000 train images = 78 x 30 = 2,340 steps (drop_last); the recipes that add
# the 5,000 unlabeled images take the same steps in 20 epochs, so every student arm trains as
# long.
train_cfg = dict(max_epochs=30, val_interval=3)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1), logger=dict(interval=20))
randomness = dict(seed=0)
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])  # no TensorBoard events
