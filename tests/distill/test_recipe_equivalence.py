"""The recipes, rewritten as mmengine Runner configs (issue 21), describe the same training as
before: each shipped recipe, read by ``load_recipe``, is mapped back onto the fields of the
former private schema and compared with what that schema resolved them to
(``data/recipes_before_issue21.json``, dumped by the former ``load_recipe`` and
``eval_transform_of`` before the rewrite): models, data, batch, transforms, normalisation, loss,
optimiser, epochs, warm-up, intervals, EMA, seed, export name."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BEFORE = json.loads((Path(__file__).parent / "data" / "recipes_before_issue21.json").read_text())
NAMES = sorted(k for k in BEFORE if not k.startswith("__"))


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
    out = dict(name=spec["name"], weights=spec.get("weights"),
               pretrained=spec.get("pretrained", teacher), num_classes=spec.get("num_classes"),
               bn_mode=spec.get("bn_mode", "eval" if teacher else "train"), kwargs={})
    if teacher:
        out.update({k: spec.get(k, d) for k, d in (("precision", "auto"), ("fold_bn", True),
                                                   ("channels_last", True), ("compile", False))})
    return out


def _normalisation(cfg, who: str) -> tuple[list, list]:
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


def _as_before(cfg) -> dict:
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
        teacher_cache=cache, loss=m.loss, loss_weight=m.loss_weight,
        hard_label_weight=m.hard_label_weight,
        data=dict(labeled_roots=[_path(p) for p in ds.labeled_roots],
                  unlabeled_roots=[_path(p) for p in ds.unlabeled_roots],
                  val_root=_path(val.labeled_roots[0]), classes=ds.get("classes"),
                  batch_size=loader.batch_size, num_workers=loader.num_workers,
                  input_size=tf.input_size, resize=tf.get("resize"), scale=list(tf.scale),
                  ratio=list(tf.ratio), hflip=tf.hflip, auto_augment=tf.get("auto_augment"),
                  interpolation=tf.interpolation, mix=m.get("mix")),
        optimizer=opt,
        schedule=dict(epochs=cfg.train_cfg.max_epochs, warmup_epochs=warm["end"] if warm else 0,
                      eta_min=cos["eta_min"]),
        warmup_start_factor=warm["start_factor"] if warm else None,
        runtime=dict(seed=cfg.randomness.seed, deterministic=cfg.randomness.deterministic,
                     amp=cfg.optim_wrapper.amp,
                     channels_last=m.data_preprocessor.channels_last, compile=cfg.compile,
                     ema=None if ema is None else dict(momentum=ema["momentum"],
                                                       begin_iter=ema["begin_iter"]),
                     sync_bn=bool(cfg.get("sync_bn")),
                     checkpoint_interval=dh.checkpoint.interval,
                     max_keep_ckpts=dh.checkpoint.max_keep_ckpts,
                     val_interval=cfg.train_cfg.val_interval, log_interval=dh.logger.interval,
                     tensorboard=any(b["type"] == "TensorboardVisBackend"
                                     for b in cfg.visualizer.vis_backends)),
        export=dict(cfg.export), description=cfg.description,
        eval_transform=dict(input_size=val.transform.input_size, resize=val.transform.resize,
                            interpolation=val.transform.interpolation,
                            mean=_normalisation(cfg, "student")[0],
                            std=_normalisation(cfg, "student")[1]),
    )


def _before(name: str) -> dict:
    old = json.loads(json.dumps(BEFORE[name]))
    d = old["data"]
    d.pop("eval_transform")
    val_batch = d.pop("val_batch_size")  # validation batch: not part of the training
    assert val_batch in (None, 500)
    sched = old["schedule"]
    start = sched.pop("warmup_start_factor")
    old["warmup_start_factor"] = start if sched["warmup_epochs"] else None
    old["eval_transform"] = old.pop("resolved_eval_transform")
    return old


@pytest.mark.parametrize("name", NAMES)
def test_recipe_describes_the_training_it_did_before(name):
    from ssld_zoo.distill.recipes import load_recipe
    cfg = load_recipe(name)
    now, before = _as_before(cfg), _before(name)
    assert set(now) == set(before)
    for key in before:
        assert now[key] == before[key], key
    # each model normalises with the same statistics the former shared transform used
    if cfg.model.get("teacher") is not None:
        assert _normalisation(cfg, "teacher") == (before["eval_transform"]["mean"],
                                                  before["eval_transform"]["std"])


def test_the_fixture_covers_every_shipped_recipe():
    from ssld_zoo.distill.recipes import list_recipes
    assert sorted(n for n, _, _ in list_recipes()) == NAMES
    assert len([n for n in NAMES if not n.startswith("cifar10/")]) == 16


def test_transfer_defaults_describe_the_same_run():
    """TransferConfig's defaults are as before, and transfer_recipe writes them into the Runner
    config it builds (epochs, batch, lr, weight decay, image size, seed, intervals)."""
    import dataclasses
    from ssld_zoo.adapters.transfer import TransferConfig, transfer_recipe
    from ssld_zoo.registry import EvalTransform
    before = BEFORE["__transfer_defaults__"]
    cfg = TransferConfig()
    assert dataclasses.asdict(cfg) == before
    run = transfer_recipe("resnet18_vd", "/data/x", None, cfg, ["a", "b"], 320,
                          (0.1, 0.1, 0.2, 0.2, 0.3), EvalTransform().at_size(cfg.image_size))
    opt = run.optim_wrapper.optimizer
    assert (run.train_cfg.max_epochs, run.train_dataloader.batch_size, opt.lr,
            opt.weight_decay, opt.momentum, opt.nesterov) == (2, 32, 0.01, 1e-4, 0.9, True)
    assert run.train_dataloader.dataset.transform.input_size == 64
    assert run.val_dataloader.dataset.transform.input_size == 64
    assert run.randomness.seed == 0 and run.train_dataloader.dataset.seed == 0
    assert run.default_hooks.checkpoint.interval == 1
    assert run.default_hooks.checkpoint.max_keep_ckpts == 3
    warm = run.param_scheduler[0]  # 10% of 2 x 10 steps = 2 steps, half a step more
    assert warm["type"] == "LinearLR" and warm["end"] == pytest.approx(2.5 / 10)
    assert run.optim_wrapper.paramwise_cfg.stage_lr_mult == [0.1, 0.1, 0.2, 0.2, 0.3]
