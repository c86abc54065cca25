"""Fine-tune a zoo backbone on an image-folder classification dataset, with per-stage lrs.

The paper's transfer table (Cui et al. 2021; PaddleClas ``distillation_en.md``) fine-tunes
ResNet50_vd and its SSLD weights on ten datasets with learning-rate multipliers per stage:
ResNet50_vd [0.1, 0.1, 0.2, 0.2, 0.3] (stem, then the four stages), MobileNetV3_large
[0.25, 0.25, 0.5, 0.5, 0.75]; the new classifier (and anything after the last stage) trains at
the full rate. Stages are those of :func:`ssld_zoo.adapters.stages.stage_layout`.

Data layout: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (ImageFolder trees).

The run is the shared engine's (:func:`ssld_zoo.engine.runner.build_engine`, the one
``ssld-zoo distill`` uses): a :class:`TransferClassifier` mmengine model, the stage groups
built by the ``SSLDTransferLrConstructor`` optimizer-wrapper constructor, warm-up + cosine
from the ``schedule`` section, and the ``runtime`` section's checkpoints (atomic, resumable), EMA,
AMP, logging and TensorBoard, all in one work dir. The transforms are the weight card's: the
card's eval transform at ``image_size`` for validation and export, its mean/std (applied on the
device) and interpolation for training.
"""
from __future__ import annotations

import dataclasses
import os
import random
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
from ssld_zoo.distill.distiller import DistillPreprocessor, NonFiniteLossError
from ssld_zoo.engine.hooks import EMAHook, find_hook, unwrap
from ssld_zoo.registry import get_arch

__all__ = ["TransferConfig", "TransferResult", "TransferClassifier",
           "StageLrOptimWrapperConstructor", "default_stage_lr_mult", "default_work_dir",
           "finetune", "stage_param_groups"]

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
    device: str = "cpu"    # "cpu", or "cuda" / "cuda:N" (mmengine trains on the current GPU)
    # None: a linear warm-up over 10% of the steps, at most one epoch
    warmup_epochs: float | None = None
    ema: float | None = None          # EMA momentum (e.g. 2e-4); export and val use the EMA
    amp: str = "auto"                 # auto | bf16 | fp16 | none (GPU only; fp32 on CPU)
    tensorboard: bool = True          # when tensorboard is installed
    checkpoint_interval: int = 1      # epochs between checkpoints (the last is always kept)
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
    export_path: Path | None = None   # <work_dir>/<name>.safetensors (+ .json card)


def stage_param_groups(model: nn.Module, lr: float, weight_decay: float,
                       stage_lr_mult: Sequence[float]) -> list[dict]:
    """SGD parameter groups: stem at ``lr * mult[0]``, stage i at ``lr * mult[i + 1]``, the
    rest (classifier, layers after the last stage) at ``lr``. BatchNorm and bias parameters get
    no weight decay (the usual fine-tuning practice)."""
    layout = stage_layout(model)
    if len(stage_lr_mult) != len(layout.stages) + 1:
        raise ValueError(f"stage_lr_mult needs {len(layout.stages) + 1} values (stem + "
                         f"{len(layout.stages)} stages), got {list(stage_lr_mult)}")
    mults = {"stem": stage_lr_mult[0], "head": 1.0}
    mults.update({f"stages.{i}": m for i, m in enumerate(stage_lr_mult[1:])})
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = layout.group_of(name.rsplit(".", 1)[0])
        no_decay = p.ndim <= 1
        groups.setdefault((group, no_decay), []).append(p)
    return [{"params": ps, "lr": lr * mults[g], "initial_lr": lr * mults[g], "group": g,
             "weight_decay": 0.0 if nd else weight_decay} for (g, nd), ps in groups.items()]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(name="SSLDTransferLrConstructor", force=True)
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
            raise ValueError("SSLDTransferLrConstructor needs "
                             "paramwise_cfg=dict(stage_lr_mult=...)")
        self.stage_lr_mult = tuple(p.pop("stage_lr_mult"))
        if p:
            raise ValueError(f"SSLDTransferLrConstructor: unknown paramwise_cfg key(s) "
                             f"{sorted(p)}; valid: module, stage_lr_mult")

    def __call__(self, model: nn.Module):
        net = getattr(unwrap(model), self.module)
        groups = stage_param_groups(net, self.optimizer_cfg["lr"],
                                    self.optimizer_cfg.get("weight_decay", 0.0),
                                    self.stage_lr_mult)
        optimizer = OPTIMIZERS.build({**self.optimizer_cfg, "params": groups})
        wrapper = {"type": "OptimWrapper", **self.optim_wrapper_cfg}
        return OPTIM_WRAPPERS.build(wrapper, default_args=dict(optimizer=optimizer))


@MODELS.register_module(name="SSLDTransferClassifier", force=True)
class TransferClassifier(BaseModel):
    """A zoo classifier (``net``) fine-tuned with cross-entropy, as an mmengine model.

    ``net``: a zoo model, or ``dict(name=, weights=, pretrained=, num_classes=)`` for
    :func:`ssld_zoo.distill.distiller.build_zoo_model`. Batches are ``dict(inputs=uint8 NCHW,
    labels=)``; the :class:`DistillPreprocessor` normalises them on the device. ``predict``
    returns what :class:`~ssld_zoo.distill.metrics.DistillAccuracy` reads (``student`` logits
    and ``labels``)."""

    def __init__(self, net: nn.Module | dict, data_preprocessor: dict | nn.Module | None = None):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = DistillPreprocessor(**data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor or DistillPreprocessor())
        if isinstance(net, dict):
            from ssld_zoo.distill.distiller import build_zoo_model
            net = build_zoo_model(**net)
        self.net = net
        if getattr(self.data_preprocessor, "channels_last", False):
            self.net.to(memory_format=torch.channels_last)
        self.skipped_images = 0
        self.skipped_batches = 0  # steps with no readable image (see SkipEmptyBatchTrainLoop)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None,
                indices: torch.Tensor | None = None, skipped: int = 0,
                mode: str = "tensor") -> Any:
        if mode == "loss":
            self.skipped_images += int(skipped)
            loss = F.cross_entropy(self.net(inputs).float(), labels)
            if not torch.isfinite(loss.detach()):
                raise NonFiniteLossError(
                    f"the loss became {loss.item()}; stopped before the optimiser step, so the "
                    f"checkpoints written so far are intact. Lower the learning rate or "
                    f"lengthen the warm-up.")
            return {"loss_ce": loss}
        if mode == "predict":
            with torch.no_grad():
                return [{"student": self.net(inputs).float(), "labels": labels}]
        return self.net(inputs)


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
        self.records.append({"epoch": runner.epoch + 1,  # the loop counts it after this hook
                             "train_loss": self._loss / max(self._n, 1), "val_top1": None,
                             "seconds": time.perf_counter() - self._t0})

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if not self.records or metrics is None or "top1" not in metrics:
            return
        self.records[-1].update(val_top1=float(metrics["top1"]),
                                seconds=time.perf_counter() - self._t0)
        for rec in self.records[self._sent:]:
            if self.progress is not None:
                self.progress(rec)
        self._sent = len(self.records)


def default_work_dir(name: str) -> Path:
    """``work_dirs/transfer/<name>`` (relative to the current directory)."""
    return Path("work_dirs") / "transfer" / name


def _check_splits(data: Path) -> None:
    for split in ("train", "val"):
        if not (data / split).is_dir():
            raise FileNotFoundError(f"{data / split} does not exist: expected an ImageFolder "
                                    f"layout {data}/train/<class>/*.jpg and {data}/val/<class>/")


def _datasets(data: Path, cfg: TransferConfig):
    """The train and val :class:`~ssld_zoo.distill.data.DistillDataset` (transforms set later,
    from the weight card), each capped per class."""
    from ssld_zoo.distill.data import DistillDataset

    _check_splits(data)
    train = DistillDataset([str(data / "train")], seed=cfg.seed)
    val = DistillDataset([str(data / "val")], seed=cfg.seed)
    if train.classes != val.classes:
        raise ValueError(f"{data}: train classes {train.classes} differ from val classes "
                         f"{val.classes}")
    for ds, cap in ((train, cfg.max_train_per_class), (val, cfg.max_val_per_class)):
        _per_class(ds, cap, cfg.seed)
    return train, val, train.classes


def _per_class(ds, cap: int | None, seed: int) -> None:
    """Keep at most ``cap`` images per class of ``ds`` (drawn with ``seed``), in place."""
    if cap is None:
        return
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, (_, y) in enumerate(ds.samples):
        by_class.setdefault(y, []).append(i)
    keep = []
    for idx in by_class.values():
        keep += rng.sample(idx, min(cap, len(idx)))
    ds.samples = [ds.samples[i] for i in sorted(keep)]
    ds.num_labeled = len(ds.samples)


def _warmup_epochs(cfg: TransferConfig, iters_per_epoch: int) -> float:
    """The warm-up in epochs, whole iterations long (mmengine converts epochs to iterations by
    ``int(epochs * iters_per_epoch)``: half an iteration more keeps float rounding out)."""
    if cfg.warmup_epochs is None:  # the former loop's: 10% of the steps, at most one epoch
        iters = min(cfg.epochs * iters_per_epoch // 10, iters_per_epoch)
    else:
        iters = round(float(cfg.warmup_epochs) * iters_per_epoch)
    iters = min(iters, cfg.epochs * iters_per_epoch - 1)
    return (iters + 0.5) / iters_per_epoch if iters > 0 else 0


def _sections(cfg: TransferConfig, iters_per_epoch: int, cuda: bool,
              cfg_options: dict | None):
    """The run's recorded Config: the ``transfer`` settings and the engine's ``optimizer``,
    ``schedule`` and ``runtime`` sections (``recipes/_base_/defaults.py``'s keys and defaults,
    set from ``cfg``), with ``cfg_options`` (``{"runtime.log_interval": 10, ...}``) laid over."""
    from mmengine.config import Config
    from ssld_zoo.distill.config import recipe_defaults

    base = recipe_defaults()
    schedule = dict(base["schedule"], epochs=cfg.epochs,
                    warmup_epochs=_warmup_epochs(cfg, iters_per_epoch))
    runtime = dict(base["runtime"], seed=cfg.seed,
                   amp=cfg.amp if cfg.device != "cpu" else "none",
                   channels_last=cuda and cfg.device != "cpu",
                   ema=None if cfg.ema is None else dict(momentum=float(cfg.ema), begin_iter=0),
                   tensorboard=cfg.tensorboard, checkpoint_interval=cfg.checkpoint_interval,
                   max_keep_ckpts=cfg.max_keep_ckpts, val_interval=1,
                   log_interval=max(1, min(50, iters_per_epoch)))
    optimizer = dict(type="SGD", lr=cfg.lr, momentum=0.9, nesterov=True,
                     weight_decay=cfg.weight_decay)
    plain = {k: list(v) if isinstance(v, tuple) else v
             for k, v in dataclasses.asdict(cfg).items()}
    run = Config(dict(transfer=plain, optimizer=optimizer, schedule=schedule, runtime=runtime))
    for key in cfg_options or {}:
        section, _, leaf = key.partition(".")
        if section not in ("optimizer", "schedule", "runtime") or not leaf or (
                section != "optimizer" and leaf not in run[section]):
            valid = [f"{s}.{k}" for s in ("schedule", "runtime") for k in run[s]]
            raise ValueError(f"--cfg-options {key}: not a setting of the run; valid: "
                             f"optimizer.<SGD argument>, {', '.join(valid)}")
    if cfg_options:
        run.merge_from_dict(dict(cfg_options))
    return run


def finetune(name: str, data: str | Path, weights: str | None = "ssld",
             cfg: TransferConfig | None = None, work_dir: str | os.PathLike | None = None,
             resume: bool | str | os.PathLike = False,
             progress: Callable[[dict], None] | None = None, *,
             extra_hooks: Sequence[Hook] = (), cfg_options: dict | None = None,
             export: bool = True, log_level: str = "WARNING") -> TransferResult:
    """Fine-tune zoo model ``name`` on ``data`` (ImageFolder train/val) and return val top-1.

    ``weights``: ``'ssld'`` (the architecture's SSLD weights), a registered weight name, a
    file, or None for random initialisation. ``work_dir`` (default
    :func:`default_work_dir`) receives the engine's checkpoints, logs, TensorBoard events and
    the export ``<arch>_<dataset>_transfer.safetensors`` with its model card (load it with
    ``ssld_zoo.load(arch, weights=path)``). ``resume``: True continues from the work dir's
    latest checkpoint, a path from that checkpoint. ``progress`` is called with each epoch's
    record. ``extra_hooks``: more mmengine hooks; ``cfg_options``: overrides of the run's
    ``optimizer``/``schedule``/``runtime`` sections (dotted keys).
    """
    from ssld_zoo.adapters.resolve import resolve_weights
    from ssld_zoo.distill.data import build_train_transform, collate
    from ssld_zoo.distill.metrics import DistillAccuracy
    from ssld_zoo.engine.checkpoint import find_resume_checkpoint
    from ssld_zoo.engine.runner import build_engine, resume_checkpoint
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
            raise ValueError(f"device={cfg.device!r}: expected 'cpu', or 'cuda' / 'cuda:N' "
                             f"with a GPU")
        if ":" in cfg.device:
            torch.cuda.set_device(torch.device(cfg.device))  # mmengine uses the current GPU
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir(name)
    if resume is True and find_resume_checkpoint(work_dir) is None:
        raise FileNotFoundError(f"resume: no checkpoint to resume from in {work_dir} (no "
                                f"last_checkpoint, no complete epoch_N.pth); check the work dir")
    resume_path = resume_checkpoint(work_dir, resume)
    train, val, classes = _datasets(data, cfg)
    if len(train) < cfg.batch_size:
        raise ValueError(f"batch_size={cfg.batch_size} is larger than the {len(train)} training "
                         f"images, so an epoch would have no complete batch")
    torch.manual_seed(cfg.seed)  # the new classifier's initialisation
    model = (ssld_zoo.load(arch, weights=resolved) if resolved is not None
             else ssld_zoo.load(arch, pretrained=False))
    model.reset_classifier(len(classes))
    n_stages = len(model.feature_info)
    mult = tuple(cfg.stage_lr_mult) if cfg.stage_lr_mult is not None else \
        default_stage_lr_mult(arch, n_stages)
    stage_param_groups(model, cfg.lr, cfg.weight_decay, mult)  # a bad count fails here

    # One transform path: the weight card's eval transform at image_size (validation, export),
    # its mean/std on the device, its interpolation for the training crops.
    eval_tf = eval_transform_of(model, name).at_size(cfg.image_size)
    train.transform = build_train_transform(cfg.image_size, scale=(0.5, 1.0),
                                            interpolation=eval_tf.interpolation)
    val.transform = eval_tf.resize_crop()

    iters = len(train) // cfg.batch_size
    run = _sections(cfg, iters, cuda, cfg_options)
    rt = run["runtime"]
    net = TransferClassifier(model, data_preprocessor=dict(
        mean=eval_tf.mean, std=eval_tf.std, channels_last=bool(rt["channels_last"])))
    workers = int(cfg.workers)
    common = dict(num_workers=workers, persistent_workers=workers > 0,
                  pin_memory=cuda and cfg.device != "cpu", collate_fn=collate)
    records = _EpochRecords(progress)
    runner = build_engine(
        model=net, work_dir=work_dir,
        train_dataloader=dict(dataset=train, batch_size=cfg.batch_size, drop_last=True,
                              sampler=dict(type="SSLDEpochIndexSampler", shuffle=True,
                                           seed=cfg.seed), **common),
        val_dataloader=dict(dataset=val, batch_size=cfg.batch_size * 2,
                            sampler=dict(type="DefaultSampler", shuffle=False,
                                         round_up=False), **common),
        val_evaluator=dict(type=DistillAccuracy), optimizer=run["optimizer"],
        schedule=run["schedule"], runtime=rt, cfg=run, resume_path=resume_path,
        custom_hooks=[records, *extra_hooks], save_best="top1",
        paramwise_cfg=dict(module="net", stage_lr_mult=list(mult)),
        constructor="SSLDTransferLrConstructor", log_level=log_level,
        experiment_name=f"transfer_{arch}_{uuid.uuid4().hex[:8]}", ema_module="net")
    if cfg.device == "cpu":
        runner.model.to("cpu")  # mmengine places the model on the GPU when there is one
    t0 = time.perf_counter()
    runner.train()
    top1 = next((r["val_top1"] for r in reversed(records.records)
                 if r["val_top1"] is not None), None)
    if top1 is None:  # resumed from the final checkpoint: nothing left to train
        top1 = float(runner.val()["top1"])
    result = TransferResult(arch, resolved, top1, epochs=records.records,
                            seconds=time.perf_counter() - t0, stage_lr_mult=mult,
                            num_classes=len(classes), train_images=len(train),
                            val_images=len(val), work_dir=work_dir)
    if export:
        result.export_path = _export(runner, result, data, eval_tf, cfg, classes)
    return result


def _export(runner, result: TransferResult, data: Path, eval_tf, cfg: TransferConfig,
            classes: list[str]) -> Path:
    """The fine-tuned network (the EMA's when the run has an EMAHook) as
    ``<work_dir>/<arch>_<dataset>_transfer.safetensors`` with its card."""
    from ssld_zoo.distill.export import export_student
    from ssld_zoo.registry import WeightCard

    ema = find_hook(runner, EMAHook)
    state = ema.state_for_export() if ema is not None else unwrap(runner.model).net.state_dict()
    dataset = data.resolve().name or "data"
    name = f"{result.name}_{dataset}_transfer"
    out = Path(result.work_dir) / f"{name}.safetensors"
    card = WeightCard(
        name=name, arch=result.name, urls=(out.name,), top1=result.top1,
        top1_source=f"ssld-zoo transfer, top-1 on {data / 'val'}", teacher=None,
        transform=eval_tf, num_classes=result.num_classes,
        description=f"{result.name} fine-tuned on {dataset} from "
                    f"{result.weights or 'random initialisation'} by ssld-zoo transfer")
    training = {"data": str(data), "weights": result.weights, "classes": list(classes),
                "transfer": dataclasses.asdict(cfg), "stage_lr_mult": list(result.stage_lr_mult),
                "train_images": result.train_images, "val_images": result.val_images,
                "history": result.epochs, "ema": ema is not None}
    return export_student(state, out, card, training=training)
