# The defaults of every recipe, in one place: ssld-zoo lays each recipe (with its own _base_
# files) over this file, and validates the result against ssld_zoo/distill/config.py's SCHEMA.
# A key that is not here is an error naming the valid ones; see docs/distillation.md.
description = ""
# teacher=None: train the student on labels only (needs hard_label_weight > 0).
teacher = dict(
    name=None, weights=None, pretrained=True, num_classes=None, bn_mode="eval", kwargs={},
    # the fast online teacher (ssld_zoo/distill/teacher.py, benchmarks/teacher_speed.py):
    # auto = bf16 on a GPU that has it, else fp32
    precision="auto", fold_bn=True, channels_last=True, compile=False)
# path=: train from a cache that `ssld-zoo label` built instead of running the teacher
# (ssld_zoo/distill/cache/); crops_per_image views of an image per step; the first `views`.
teacher_cache = dict(path=None, crops_per_image=1, views=None)
student = dict(name=None, weights=None, pretrained=False, num_classes=None, bn_mode="train",
               kwargs={})
loss = dict(type="SymmetricKL")  # and its own keys: ssld_zoo/distill/losses.py
loss_weight = 1.0
hard_label_weight = 0.0
data = dict(
    labeled_roots=[], unlabeled_roots=[], val_root=None, classes=None,
    allow_empty_classes=False,  # True: a class folder without images is a warning, not an error
    batch_size=256,          # GLOBAL batch, split evenly over the processes
    val_batch_size=None,     # per process; default: the per-process train batch
    num_workers=4,
    input_size=224, resize=None, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
    auto_augment=None, interpolation="bilinear",
    # The eval transform and the normalisation of training and evaluation: the weight card's
    # (the teacher's published weights, else the student's, else the zoo default), with any
    # of input_size, resize, interpolation, mean, std set here overriding it.
    eval_transform=None,
    # dict(mixup_alpha=, cutmix_alpha=, prob=, switch_prob=): mix each batch before both
    # models see it ("function matching"; ssld_zoo/distill/mixing.py)
    mix=None,
)
optimizer = dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False)
schedule = dict(epochs=100, warmup_epochs=0, warmup_start_factor=0.01, eta_min=0.0)
runtime = dict(
    seed=0, deterministic=False,
    amp="auto",              # auto | bf16 | fp16 | none (auto: bf16/fp16 on GPU, fp32 on CPU)
    channels_last="auto",    # auto (on with CUDA) | True | False
    compile=False,           # True or torch.compile kwargs: compile the train step
    ema=None,                # None | dict(momentum=2e-4, begin_iter=0)
    sync_bn=False,           # SyncBatchNorm for the student under DDP (GPU only)
    checkpoint_interval=1, max_keep_ckpts=3, val_interval=1, log_interval=50,
    tensorboard=True,
)
export = dict(name=None, description=None)
