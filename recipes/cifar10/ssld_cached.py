"""CIFAR-10 reproduction, arm (b) from a teacher cache: ssld.py without running the teacher.

Build the cache once (the teacher on 32 stored views of each train image, all 10 classes kept
per view), then train from it:

    ssld-zoo label cifar10/ssld_cached --views 32 --topk 10
    ssld-zoo distill cifar10/ssld_cached

View v of an image is the crop ssld.py trains on at epoch v, so with one view per image per
epoch and 32 >= 30 stored views this run sees exactly (b)'s crops: only the compression of the
teacher's output differs. ``--cfg-options train_dataloader.dataset.views=N`` uses the first N views
(benchmarks/reproduce_cifar10.py's cache arms).
"""

_base_ = ["./ssld.py"]

description = "CIFAR-10 reproduction (b) from a teacher cache (32 views, all 10 classes): no teacher forward in training"
# The cache folder is named twice: the Distiller reads what the cache holds (its kind and
# classes) instead of building the teacher, the dataset replays its views.
cache = "work_dirs/cifar10/teacher_cache"
model = dict(teacher_cache=cache)
train_dataloader = dict(
    collate_fn=dict(type="collate_cached"),
    dataset=dict(
        _delete_=True,
        type="CachedViewDataset",
        cache=cache,
        crops_per_image=1,
        views=None,
        images={{_base_.train_dataloader.dataset}},
    ),
)
export = dict(name="cifar10_ssld_cached")
