"""A Runner-config recipe read back in the fields of the former private recipe schema (issue 21):
what tests/distill/test_recipe_equivalence.py compares with the fixture of what the recipes
resolved to before, and what the reproduction test compares arms with."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _path(p: str) -> str:
    """A root as the fixture stores it: relative to the checkout when beside it (the CIFAR-10
    data), as written otherwise (the placeholders /data/imagenet/...)."""
    p = os.path.normpath(p)
    return os.path.relpath(p, REPO) if p.startswith(str(REPO.parent) + os.sep) else p


def _model_section(spec: dict | None, teacher: bool) -> dict | None:
    """A teacher/student spec of the new format in the former section's fields."""
    if spec is None:
        return None
    assert spec["type"] == "ZooModel"
    out = dict(
        name=spec["name"],
        weights=spec.get("weights"),
        pretrained=spec.get("pretrained", teacher),
        num_classes=spec.get("num_classes"),
        bn_mode=spec.get("bn_mode", "eval" if teacher else "train"),
        kwargs={},
    )
    if teacher:
        out.update(
            {
                k: spec.get(k, d)
                for k, d in (
                    ("precision", "auto"),
                    ("fold_bn", True),
                    ("channels_last", True),
                    ("compile", False),
                )
            }
        )
    return out


def normalisation(cfg, who: str) -> tuple[list, list]:
    """The mean/std ``who`` normalises with: its spec's, else the Distiller's, else its
    weights' own (the published card of a pretrained zoo model, else the zoo default); the
    rule of ssld_zoo.distill.distiller.model_input, read without building the model."""
    from ssld_zoo.registry import EvalTransform, get_weights

    m = cfg.model
    spec = m[who]
    own = EvalTransform()
    if spec.get("pretrained", who == "teacher") and not spec.get("weights"):
        card = get_weights(spec["name"])
        own = card.transform if card is not None else own
    pick = [spec.get(k, m.get(k)) for k in ("mean", "std")]
    return (list(pick[0] or own.mean), list(pick[1] or own.std))


def as_before(cfg) -> dict:
    """A new-format recipe in the former schema's fields (what the fixture holds)."""
    m, loader = cfg.model, cfg.train_dataloader
    ds = loader.dataset
    cache = None
    if ds.type == "CachedViewDataset":
        cache = dict(path=ds.cache, crops_per_image=ds.crops_per_image, views=ds.views)
        assert m.teacher_cache == ds.cache
        ds = ds.images
    tf = ds.transform
    assert tf.type == "TrainViewTransform"
    val = cfg.val_dataloader.dataset
    sched = {s["type"]: s for s in cfg.param_scheduler}
    warm = sched.get("LinearLR")
    cos = sched["CosineAnnealingLR"]
    assert cos["begin"] == (warm["end"] if warm else 0) and "end" not in cos
    hooks = [h["type"] for h in cfg.custom_hooks]
    ema = next((h for h in cfg.custom_hooks if h["type"] == "ModuleEMAHook"), None)
    assert {"EpochSeedHook", "SafeCheckpointHook", "HistoryHook", "TeacherOnceHook"} <= set(hooks)
    assert ds.seed == cfg.randomness.seed  # the augmentation seed is the run's
    opt = dict(cfg.optim_wrapper.optimizer)
    dh = cfg.default_hooks
    return dict(
        teacher=_model_section(m.get("teacher"), True),
        student=_model_section(m.student, False),
        teacher_cache=cache,
        loss=m.loss,
        loss_weight=m.loss_weight,
        hard_label_weight=m.hard_label_weight,
        data=dict(
            labeled_roots=[_path(p) for p in ds.labeled_roots],
            unlabeled_roots=[_path(p) for p in ds.unlabeled_roots],
            val_root=_path(val.labeled_roots[0]),
            classes=ds.get("classes"),
            batch_size=loader.batch_size,
            num_workers=loader.num_workers,
            input_size=tf.input_size,
            resize=tf.get("resize"),
            scale=list(tf.scale),
            ratio=list(tf.ratio),
            hflip=tf.hflip,
            auto_augment=tf.get("auto_augment"),
            interpolation=tf.interpolation,
            mix=m.get("mix"),
        ),
        optimizer=opt,
        schedule=dict(
            epochs=cfg.train_cfg.max_epochs,
            warmup_epochs=warm["end"] if warm else 0,
            eta_min=cos["eta_min"],
        ),
        warmup_start_factor=warm["start_factor"] if warm else None,
        runtime=dict(
            seed=cfg.randomness.seed,
            deterministic=cfg.randomness.deterministic,
            amp=cfg.optim_wrapper.amp,
            channels_last=m.data_preprocessor.channels_last,
            compile=cfg.compile,
            ema=None
            if ema is None
            else dict(momentum=ema["momentum"], begin_iter=ema["begin_iter"]),
            sync_bn=bool(cfg.get("sync_bn")),
            checkpoint_interval=dh.checkpoint.interval,
            max_keep_ckpts=dh.checkpoint.max_keep_ckpts,
            val_interval=cfg.train_cfg.val_interval,
            log_interval=dh.logger.interval,
            tensorboard=any(
                b["type"] == "TensorboardVisBackend" for b in cfg.visualizer.vis_backends
            ),
        ),
        export=dict(cfg.export),
        description=cfg.description,
        eval_transform=dict(
            input_size=val.transform.input_size,
            resize=val.transform.resize,
            interpolation=val.transform.interpolation,
            mean=normalisation(cfg, "student")[0],
            std=normalisation(cfg, "student")[1],
        ),
    )
