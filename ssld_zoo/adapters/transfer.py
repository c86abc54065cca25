"""Fine-tune a zoo backbone on an image-folder classification dataset, with per-stage lrs.

The paper's transfer table (Cui et al. 2021; PaddleClas ``distillation_en.md``) fine-tunes
ResNet50_vd and its SSLD weights on ten datasets with learning-rate multipliers per stage:
ResNet50_vd [0.1, 0.1, 0.2, 0.2, 0.3] (stem, then the four stages), MobileNetV3_large
[0.25, 0.25, 0.5, 0.5, 0.75]; the new classifier (and anything after the last stage) trains at
the full rate. Stages are those of :func:`ssld_zoo.adapters.stages.stage_layout`.

Data layout: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (ImageFolder trees).

A transfer run is a recipe too: :func:`transfer_recipe` turns a :class:`TransferConfig` (the
CLI's flags) into an mmengine Runner config over the same ``recipes/_base_/default_runtime.py``
``ssld-zoo distill`` uses (``Runner.from_cfg`` trains it unchanged): a
:class:`TransferClassifier` model, the stage groups built by the
``StageLrOptimWrapperConstructor``, a linear warm-up + cosine, the atomic resumable checkpoints,
EMA, AMP, logging and TensorBoard, all in one work dir. The transforms are the weight card's:
the card's eval transform at ``image_size`` for validation and export, its mean/std (applied on
the device) and interpolation for training.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

import ssld_zoo
from ssld_zoo.adapters.stages import stage_layout
from ssld_zoo.engine.hooks import ModuleEMAHook, find_hook, unwrap
from ssld_zoo.engine.models import ModelInput, build_classifier
from ssld_zoo.engine.preprocessor import NonFiniteLossError, UInt8Preprocessor
from ssld_zoo.registry import IMAGENET_MEAN, IMAGENET_STD, get_arch

__all__ = [
    "TransferConfig",
    "TransferResult",
    "TransferClassifier",
    "StageLrOptimWrapperConstructor",
    "default_stage_lr_mult",
    "default_work_dir",
    "finetune",
    "stage_param_groups",
    "transfer_recipe",
]

# Published per-stage multipliers (stem first), by family file (PaddleClas distillation_en.md).
# The zoo's MobileNetV3 has five stages (strides 2..32) where PaddleClas's list has five entries
# for stem + four block groups: the stem and the stride-2 stage share the first one.
_PUBLISHED_MULT = {
    "resnet_vd": (0.1, 0.1, 0.2, 0.2, 0.3),
    "mobilenet_v3": (0.25, 0.25, 0.25, 0.5, 0.5, 0.75),
}


def default_stage_lr_mult(name: str, n_stages: int) -> tuple[float, ...]:
    """The published multipliers (stem + stages) for ``name``'s family, else all 1.0."""
    mult = _PUBLISHED_MULT.get(get_arch(name).family)
    if mult is None or len(mult) != n_stages + 1:
        return (1.0,) * (n_stages + 1)
    return mult


@dataclass
class TransferConfig:
    """Hyper-parameters of one fine-tuning run (defaults: a short CPU-sized run)."""

    epochs: int = 2
    batch_size: int = 32
    lr: float = 0.01
    weight_decay: float = 1e-4
    image_size: int = 64
    stage_lr_mult: Sequence[float] | None = None  # None: the published ones for the family
    max_train_per_class: int | None = None
    max_val_per_class: int | None = None
    workers: int = 0
    seed: int = 0
    device: str = "cpu"  # "cpu", or "cuda" / "cuda:N" (mmengine trains on the current GPU)
    # None: a linear warm-up over 10% of the steps, at most one epoch
    warmup_epochs: float | None = None
    ema: float | None = None  # EMA momentum (e.g. 2e-4); export and val use the EMA
    amp: str = "auto"  # auto | bf16 | fp16 | none (GPU only; fp32 on CPU)
    tensorboard: bool = True  # when tensorboard is installed
    checkpoint_interval: int = 1  # epochs between checkpoints (the last is always kept)
    max_keep_ckpts: int = 3


@dataclass
class TransferResult:
    name: str
    weights: str | None
    top1: float
    epochs: list[dict] = field(default_factory=list)  # the epochs this call trained
    seconds: float = 0.0
    stage_lr_mult: tuple[float, ...] = ()
    num_classes: int = 0
    train_images: int = 0
    val_images: int = 0
    work_dir: Path | None = None
    export_path: Path | None = None  # <work_dir>/<name>.safetensors (+ .json card)


def stage_param_groups(
    model: nn.Module, lr: float, weight_decay: float, stage_lr_mult: Sequence[float]
) -> list[dict]:
    """SGD parameter groups: stem at ``lr * mult[0]``, stage i at ``lr * mult[i + 1]``, the
    rest (classifier, layers after the last stage) at ``lr``. BatchNorm and bias parameters get
    no weight decay (the usual fine-tuning practice)."""
    layout = stage_layout(model)
    if len(stage_lr_mult) != len(layout.stages) + 1:
        raise ValueError(
            f"stage_lr_mult needs {len(layout.stages) + 1} values (stem + "
            f"{len(layout.stages)} stages), got {list(stage_lr_mult)}"
        )
    mults = {"stem": stage_lr_mult[0], "head": 1.0}
    mults.update({f"stages.{i}": m for i, m in enumerate(stage_lr_mult[1:])})
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = layout.group_of(name.rsplit(".", 1)[0])
        no_decay = p.ndim <= 1
        groups.setdefault((group, no_decay), []).append(p)
    return [
        {
            "params": ps,
            "lr": lr * mults[g],
            "initial_lr": lr * mults[g],
            "group": g,
            "weight_decay": 0.0 if nd else weight_decay,
        }
        for (g, nd), ps in groups.items()
    ]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StageLrOptimWrapperConstructor:
    """mmengine optimizer-wrapper constructor that builds :func:`stage_param_groups` of the
    model's ``paramwise_cfg['module']`` (default ``net``) with ``paramwise_cfg['stage_lr_mult']``
    from the optimizer's ``lr`` and ``weight_decay``; the wrapper (plain or AMP) as configured."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        self.optimizer_cfg = dict(self.optim_wrapper_cfg.pop("optimizer"))
        p = dict(paramwise_cfg or {})
        self.module = p.pop("module", "net")
        if "stage_lr_mult" not in p:
            raise ValueError(
                "StageLrOptimWrapperConstructor needs paramwise_cfg=dict(stage_lr_mult=...)"
            )
        self.stage_lr_mult = tuple(p.pop("stage_lr_mult"))
        if p:
            raise ValueError(
                f"StageLrOptimWrapperConstructor: unknown paramwise_cfg key(s) "
                f"{sorted(p)}; valid: module, stage_lr_mult"
            )

    def __call__(self, model: nn.Module):
        net = getattr(unwrap(model), self.module)
        groups = stage_param_groups(
            net,
            self.optimizer_cfg["lr"],
            self.optimizer_cfg.get("weight_decay", 0.0),
            self.stage_lr_mult,
        )
        optimizer = OPTIMIZERS.build({**self.optimizer_cfg, "params": groups})
        wrapper = {"type": "OptimWrapper", **self.optim_wrapper_cfg}
        return OPTIM_WRAPPERS.build(wrapper, default_args=dict(optimizer=optimizer))


@MODELS.register_module()
class TransferClassifier(BaseModel):
    """A classifier (``net``) fine-tuned with cross-entropy, as an mmengine model.

    ``net``: a model or its spec (``dict(type="ZooModel", name=, weights=, num_classes=)``;
    :func:`~ssld_zoo.engine.models.build_classifier`). Batches are ``dict(inputs=uint8 NCHW,
    labels=)``: the :class:`UInt8Preprocessor` brings them to the device as [0, 1] floats, and
    ``mean``/``std`` normalise them there. ``predict`` returns what
    :class:`~ssld_zoo.engine.metrics.TopKAccuracy` reads (``logits`` and ``labels``)."""

    def __init__(
        self,
        net: nn.Module | dict,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        data_preprocessor: dict | nn.Module | None = None,
    ):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = UInt8Preprocessor(
                **{k: v for k, v in data_preprocessor.items() if k != "type"}
            )
        super().__init__(data_preprocessor=data_preprocessor or UInt8Preprocessor())
        self.net = build_classifier(net)
        self.net_input = ModelInput(mean, std)
        if getattr(self.data_preprocessor, "channels_last", False):
            self.net.to(memory_format=torch.channels_last)
        self.skipped_images = 0
        self.skipped_batches = 0  # steps with no readable image (see SkipEmptyBatchTrainLoop)

    def forward(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
        skipped: int = 0,
        mode: str = "tensor",
    ) -> Any:
        if mode == "loss":
            self.skipped_images += int(skipped)
            loss = F.cross_entropy(self.net(self.net_input(inputs)).float(), labels)
            if not torch.isfinite(loss.detach()):
                raise NonFiniteLossError(
                    f"the loss became {loss.item()}; stopped before the optimiser step, so the "
                    f"checkpoints written so far are intact. Lower the learning rate or "
                    f"lengthen the warm-up."
                )
            return {"loss_ce": loss}
        if mode == "predict":
            with torch.no_grad():
                return [{"logits": self.net(self.net_input(inputs)).float(), "labels": labels}]
        return self.net(self.net_input(inputs))


class _EpochRecords(Hook):
    """Per-epoch ``{epoch, train_loss (mean over the epoch's images), val_top1, seconds}``;
    ``progress`` gets each record once its validation is done."""

    priority = "LOW"

    def __init__(self, progress: Callable[[dict], None] | None = None):
        self.progress = progress
        self.records: list[dict] = []
        self._sent = 0
        self._t0 = time.perf_counter()

    def before_run(self, runner) -> None:
        self._t0 = time.perf_counter()

    def before_train_epoch(self, runner) -> None:
        self._loss, self._n = 0.0, 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if outputs is not None and "loss" in outputs:
            n = int(data_batch["inputs"].shape[0])
            self._loss += float(outputs["loss"].detach()) * n
            self._n += n

    def after_train_epoch(self, runner) -> None:
        self.records.append(
            {
                "epoch": runner.epoch + 1,  # the loop counts it after this hook
                "train_loss": self._loss / max(self._n, 1),
                "val_top1": None,
                "seconds": time.perf_counter() - self._t0,
            }
        )

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if not self.records or metrics is None or "top1" not in metrics:
            return
        self.records[-1].update(
            val_top1=float(metrics["top1"]), seconds=time.perf_counter() - self._t0
        )
        for rec in self.records[self._sent :]:
            if self.progress is not None:
                self.progress(rec)
        self._sent = len(self.records)


def default_work_dir(name: str) -> Path:
    """``work_dirs/transfer/<name>`` (relative to the current directory)."""
    return Path("work_dirs") / "transfer" / name


def _check_splits(data: Path) -> None:
    for split in ("train", "val"):
        if not (data / split).is_dir():
            raise FileNotFoundError(
                f"{data / split} does not exist: expected an ImageFolder "
                f"layout {data}/train/<class>/*.jpg and {data}/val/<class>/"
            )


def _warmup_epochs(cfg: TransferConfig, iters_per_epoch: int) -> float:
    """The warm-up in epochs, whole iterations long (mmengine converts epochs to iterations by
    ``int(epochs * iters_per_epoch)``: half an iteration more keeps float rounding out)."""
    if cfg.warmup_epochs is None:  # the former loop's: 10% of the steps, at most one epoch
        iters = min(cfg.epochs * iters_per_epoch // 10, iters_per_epoch)
    else:
        iters = round(float(cfg.warmup_epochs) * iters_per_epoch)
    iters = min(iters, cfg.epochs * iters_per_epoch - 1)
    return (iters + 0.5) / iters_per_epoch if iters > 0 else 0


def transfer_recipe(
    arch: str,
    data: str | os.PathLike,
    weights: str | None,
    cfg: TransferConfig,
    classes: Sequence[str],
    train_images: int,
    stage_lr_mult: Sequence[float],
    eval_tf: Any,
    cfg_options: dict | None = None,
) -> Any:
    """The Runner config of a transfer run (see the module doc): ``arch`` with ``weights`` (a
    resolved file or weight name, or None) and a new ``len(classes)``-way classifier, fine-tuned
    on ``data/train`` and evaluated on ``data/val`` as ``cfg`` says, with ``cfg_options``
    (dotted keys of the Runner config, e.g. ``{"default_hooks.logger.interval": 10}``) merged
    over it and the result checked (:func:`~ssld_zoo.engine.config_check.check_config`)."""
    from mmengine.config import Config

    from ssld_zoo.engine.config_check import check_config
    from ssld_zoo.shipped import recipes_dir

    data = Path(data)
    iters = train_images // cfg.batch_size
    warm = _warmup_epochs(cfg, iters)
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    images = dict(type="ImageDataset", seed=cfg.seed, classes=list(classes))
    loader = dict(
        num_workers=int(cfg.workers),
        persistent_workers=cfg.workers > 0,
        pin_memory=cuda,
        collate_fn=dict(type="collate_images"),
    )
    net = dict(
        type="ZooModel",
        name=arch,
        num_classes=len(classes),
        **(dict(weights=weights) if weights is not None else dict(pretrained=False)),
    )
    settings = dict(
        custom_imports=dict(imports=["ssld_zoo.adapters.transfer"], allow_failed_imports=False),
        description=f"ssld-zoo transfer of {arch} to {data}",
        transfer={
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()
        },
        model=dict(
            type="TransferClassifier",
            net=net,
            mean=tuple(eval_tf.mean),
            std=tuple(eval_tf.std),
            data_preprocessor=dict(type="UInt8Preprocessor", channels_last=cuda),
        ),
        train_dataloader=dict(
            batch_size=cfg.batch_size,
            drop_last=True,
            **loader,
            sampler=dict(type="EpochIndexSampler", shuffle=True, seed=cfg.seed),
            dataset=dict(
                **images,
                labeled_roots=[str(data / "train")],
                max_per_class=cfg.max_train_per_class,
                transform=dict(
                    type="TrainViewTransform",
                    input_size=cfg.image_size,
                    scale=(0.5, 1.0),
                    interpolation=eval_tf.interpolation,
                ),
            ),
        ),
        val_dataloader=dict(
            batch_size=cfg.batch_size * 2,
            **loader,
            sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
            dataset=dict(
                **images,
                labeled_roots=[str(data / "val")],
                role="val root",
                max_per_class=cfg.max_val_per_class,
                transform=dict(
                    type="ResizeCenterCrop",
                    input_size=eval_tf.input_size,
                    resize=eval_tf.resize,
                    interpolation=eval_tf.interpolation,
                ),
            ),
        ),
        val_evaluator=dict(type="TopKAccuracy"),
        val_cfg=dict(),
        optim_wrapper=dict(
            type="auto_amp_optim_wrapper",
            amp=cfg.amp if cuda else "none",
            optimizer=dict(
                type="SGD", lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
            ),
            constructor="StageLrOptimWrapperConstructor",
            paramwise_cfg=dict(module="net", stage_lr_mult=list(stage_lr_mult)),
        ),
        param_scheduler=[
            dict(
                type="LinearLR",
                start_factor=0.01,
                by_epoch=True,
                begin=0,
                end=warm,
                convert_to_iter_based=True,
            )
        ]
        * bool(warm)
        + [
            dict(
                type="CosineAnnealingLR",
                eta_min=0.0,
                by_epoch=True,
                begin=warm,
                convert_to_iter_based=True,
            )
        ],
        train_cfg=dict(type="SkipEmptyBatchTrainLoop", max_epochs=cfg.epochs, val_interval=1),
        default_hooks=dict(
            checkpoint=dict(interval=cfg.checkpoint_interval, max_keep_ckpts=cfg.max_keep_ckpts),
            logger=dict(interval=max(1, min(50, iters))),
        ),
        randomness=dict(seed=cfg.seed),
    )
    if cfg.ema is not None:
        settings["custom_hooks"] = [
            dict(type="EpochSeedHook"),
            dict(type="SafeCheckpointHook"),
            dict(type="ModuleEMAHook", momentum=float(cfg.ema), begin_iter=0, module="net"),
        ]
    else:
        settings["custom_hooks"] = [dict(type="EpochSeedHook"), dict(type="SafeCheckpointHook")]
    if not cfg.tensorboard:
        settings["visualizer"] = dict(vis_backends=[dict(type="LocalVisBackend")])
    run = Config.fromfile(str(recipes_dir() / "_base_" / "default_runtime.py"), lazy_import=False)
    run.merge_from_dict(settings)
    if cfg_options:
        run.merge_from_dict(dict(cfg_options))
    # the optim wrapper's constructor and paramwise_cfg go beside its type (mmengine's layout)
    return check_config(
        Config(run.to_dict(), cfg_text=f"# transfer_{arch}.py", filename=f"transfer_{arch}.py"),
        "ssld-zoo transfer",
    )


def finetune(
    name: str,
    data: str | Path,
    weights: str | None = "ssld",
    cfg: TransferConfig | None = None,
    work_dir: str | os.PathLike | None = None,
    resume: bool | str | os.PathLike = False,
    progress: Callable[[dict], None] | None = None,
    *,
    extra_hooks: Sequence[Hook] = (),
    cfg_options: dict | None = None,
    export: bool = True,
    log_level: str = "WARNING",
) -> TransferResult:
    """Fine-tune zoo model ``name`` on ``data`` (ImageFolder train/val) and return val top-1.

    ``weights``: ``'ssld'`` (the architecture's SSLD weights), a registered weight name, a
    file, or None for random initialisation. ``work_dir`` (default
    :func:`default_work_dir`) receives the engine's checkpoints, logs, TensorBoard events and
    the export ``<arch>_<dataset>_transfer.safetensors`` with its model card (load it with
    ``ssld_zoo.load(arch, weights=path)``). ``resume``: True continues from the work dir's
    latest checkpoint, a path from that checkpoint. ``progress`` is called with each epoch's
    record. ``extra_hooks``: more mmengine hooks; ``cfg_options``: overrides of the run's
    Runner config (dotted keys, see :func:`transfer_recipe`).
    """
    from mmengine.registry import RUNNERS

    from ssld_zoo.adapters.resolve import resolve_weights
    from ssld_zoo.data.images import ImageDataset
    from ssld_zoo.engine.checkpoint import find_resume_checkpoint
    from ssld_zoo.engine.runner import prepare_launch, resume_checkpoint
    from ssld_zoo.preprocess import eval_transform_of

    cfg = cfg or TransferConfig()
    if cfg.epochs < 1:
        raise ValueError(f"epochs={cfg.epochs}: expected at least 1")
    data = Path(data)
    arch = get_arch(name).name  # names first: cheap, and before scanning thousands of files
    resolved = resolve_weights(name, weights)
    cuda = torch.cuda.is_available()
    if cfg.device != "cpu":
        if not (cuda and (cfg.device == "cuda" or cfg.device.startswith("cuda:"))):
            raise ValueError(
                f"device={cfg.device!r}: expected 'cpu', or 'cuda' / 'cuda:N' with a GPU"
            )
        if ":" in cfg.device:
            torch.cuda.set_device(torch.device(cfg.device))  # mmengine uses the current GPU
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir(name)
    if resume is True and find_resume_checkpoint(work_dir) is None:
        raise FileNotFoundError(
            f"resume: no checkpoint to resume from in {work_dir} (no "
            f"last_checkpoint, no complete epoch_N.pth); check the work dir"
        )
    resume_path = resume_checkpoint(work_dir, resume)
    _check_splits(data)
    train = ImageDataset(
        [str(data / "train")], seed=cfg.seed, max_per_class=cfg.max_train_per_class
    )
    val = ImageDataset(
        [str(data / "val")], seed=cfg.seed, max_per_class=cfg.max_val_per_class, role="val root"
    )
    if train.classes != val.classes:
        raise ValueError(
            f"{data}: train classes {train.classes} differ from val classes {val.classes}"
        )
    classes = train.classes
    if len(train) < cfg.batch_size:
        raise ValueError(
            f"batch_size={cfg.batch_size} is larger than the {len(train)} training "
            f"images, so an epoch would have no complete batch"
        )
    # The weights' card (eval transform) and stage count, from the model as it loads.
    model = (
        ssld_zoo.load(arch, weights=resolved)
        if resolved is not None
        else ssld_zoo.load(arch, pretrained=False)
    )
    n_stages = len(model.feature_info)
    mult = (
        tuple(cfg.stage_lr_mult)
        if cfg.stage_lr_mult is not None
        else default_stage_lr_mult(arch, n_stages)
    )
    stage_param_groups(model, cfg.lr, cfg.weight_decay, mult)  # a bad count fails here
    # One transform path: the weight card's eval transform at image_size (validation, export),
    # its mean/std on the device, its interpolation for the training crops.
    eval_tf = eval_transform_of(model, name).at_size(cfg.image_size)
    del model
    run = transfer_recipe(
        arch, data, resolved, cfg, classes, len(train), mult, eval_tf, cfg_options
    )
    run["work_dir"] = str(work_dir)
    run["log_level"] = log_level
    run["experiment_name"] = f"transfer_{arch}_{uuid.uuid4().hex[:8]}"
    prepare_launch(run, "none")
    if not cfg.tensorboard or not _tensorboard_available():
        run["visualizer"]["vis_backends"] = [
            b for b in run["visualizer"]["vis_backends"] if b["type"] != "TensorboardVisBackend"
        ]
    if resume_path is not None:
        run["resume"], run["load_from"] = True, str(resume_path)
    torch.manual_seed(cfg.seed)  # the new classifier's initialisation
    runner = RUNNERS.build(run)
    records = _EpochRecords(progress)
    for hook in (records, *extra_hooks):
        runner.register_hook(hook)
    if cfg.device == "cpu":
        runner.model.to("cpu")  # mmengine places the model on the GPU when there is one
    t0 = time.perf_counter()
    runner.train()
    top1 = next(
        (r["val_top1"] for r in reversed(records.records) if r["val_top1"] is not None), None
    )
    if top1 is None:  # resumed from the final checkpoint: nothing left to train
        top1 = float(runner.val()["top1"])
    result = TransferResult(
        arch,
        resolved,
        top1,
        epochs=records.records,
        seconds=time.perf_counter() - t0,
        stage_lr_mult=mult,
        num_classes=len(classes),
        train_images=len(train),
        val_images=len(val),
        work_dir=work_dir,
    )
    if export:
        result.export_path = _export(runner, result, data, eval_tf, cfg, classes)
    return result


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401

        return True
    except ImportError:
        return False


def _export(
    runner, result: TransferResult, data: Path, eval_tf, cfg: TransferConfig, classes: list[str]
) -> Path:
    """The fine-tuned network (the EMA's when the run has a ModuleEMAHook) as
    ``<work_dir>/<arch>_<dataset>_transfer.safetensors`` with its card."""
    from ssld_zoo.registry import WeightCard
    from ssld_zoo.weights.export import export_with_card

    ema = find_hook(runner, ModuleEMAHook)
    state = ema.state_for_export() if ema is not None else unwrap(runner.model).net.state_dict()
    dataset = data.resolve().name or "data"
    name = f"{result.name}_{dataset}_transfer"
    out = Path(result.work_dir) / f"{name}.safetensors"
    card = WeightCard(
        name=name,
        arch=result.name,
        urls=(out.name,),
        top1=result.top1,
        top1_source=f"ssld-zoo transfer, top-1 on {data / 'val'}",
        teacher=None,
        transform=eval_tf,
        num_classes=result.num_classes,
        description=f"{result.name} fine-tuned on {dataset} from "
        f"{result.weights or 'random initialisation'} by ssld-zoo transfer",
    )
    training = {
        "data": str(data),
        "weights": result.weights,
        "classes": list(classes),
        "transfer": dataclasses.asdict(cfg),
        "stage_lr_mult": list(result.stage_lr_mult),
        "train_images": result.train_images,
        "val_images": result.val_images,
        "history": result.epochs,
        "ema": ema is not None,
    }
    return export_with_card(state, out, card, training=training)
