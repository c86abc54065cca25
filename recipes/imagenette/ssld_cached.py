"""Imagenette reproduction, SSLD from a teacher cache: ssld.py's student without running the teacher.

Build the cache once over the train photos and the unlabeled pool (the teacher on 12 stored views
of each image, view v being the crop an online run trains on at epoch v), then train from it:

    ssld-zoo label imagenette/ssld_cached --views 12
    ssld-zoo distill imagenette/ssld_cached

As given, this is arm (b) from the cache: the train photos only. The pool arms of
benchmarks/reproduce_imagenette.py ((c), (m), (r)) train from the same cache with
``train_dataloader.dataset.images.unlabeled_roots`` set to the whole pool, the mined list, or the
random list.
"""

_base_ = ["./ssld.py"]

description = (
    "Imagenette reproduction: SSLD from a teacher cache (12 views), no teacher forward in training"
)
# The cache folder is named twice: the Distiller reads what the cache holds (its kind and
# classes) instead of building the teacher, the dataset replays its views.
cache = "work_dirs/imagenette/teacher_cache"
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
export = dict(name="imagenette_ssld_cached")
