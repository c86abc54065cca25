# CIFAR-10 at its native 32 px, sized for a CPU: the data, schedule and runtime shared by the
# reproduction recipes in recipes/cifar10/ (run them all with benchmarks/reproduce_cifar10.py).
# Roots written in a recipe are relative to the recipe's folder (recipes/cifar10/): here they
# reach ../shared/data/cifar10 beside a checkout. Elsewhere give them on the command line
# (relative to the working directory there), e.g.
#   --cfg-options data.labeled_roots="['/data/cifar10/train']" data.val_root=/data/cifar10/val
# (the unlabeled recipes also set data.unlabeled_roots).
data = dict(
    labeled_roots=["../../../shared/data/cifar10/train"],  # 10,000 images, 1,000 a class
    unlabeled_roots=[],
    val_root="../../../shared/data/cifar10/val",  # 5,000 images of the CIFAR-10 test split
    batch_size=128,
    val_batch_size=500,
    num_workers=0,           # 32 px JPEGs decode faster than a worker process starts
    input_size=32,
    resize=32,
    scale=(0.5, 1.0),        # milder than ImageNet's 0.08: a 32 px image has little to spare
    ratio=(3 / 4, 4 / 3),
    hflip=0.5,
    # CIFAR-10's own statistics normalise training and evaluation
    eval_transform=dict(input_size=32, resize=32, mean=(0.4914, 0.4822, 0.4465),
                        std=(0.2470, 0.2435, 0.2616)),
)
optimizer = dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
# 30 epochs of the 10,000 train images = 78 x 30 = 2,340 steps (drop_last); the recipes that add
# the 5,000 unlabeled images take the same steps in 20 epochs, so every student arm trains as long.
schedule = dict(epochs=30, warmup_epochs=1, warmup_start_factor=0.1, eta_min=0.0)
runtime = dict(
    seed=0,
    checkpoint_interval=10,
    max_keep_ckpts=1,
    val_interval=3,
    log_interval=20,
    tensorboard=False,
)
