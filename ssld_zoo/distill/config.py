"""Recipes: mmengine Python config files, their schema, defaults, validation and lookup.

A recipe sets a few top-level variables (``teacher``, ``student``, ``loss``, ``data``,
``optimizer``, ``schedule``, ``runtime``, ``export``, ``description``); ``_base_`` files in
``recipes/_base_/`` hold datasets, schedules and runtime defaults. Anything the recipe leaves out
takes the default below. Every key is checked: a misspelt one is an error listing the valid ones,
rather than a silently ignored setting.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable

from ssld_zoo.registry import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["DEFAULTS", "RecipeError", "load_recipe", "validate_recipe", "resolve_recipe",
           "recipe_dirs", "recipe_name", "list_recipes"]

DEFAULTS: dict[str, Any] = {
    "description": "",
    # None: train the student on labels only (needs hard_label_weight > 0).
    "teacher": {"name": None, "weights": None, "pretrained": True, "num_classes": None,
                "bn_mode": "eval", "kwargs": {},
                # the fast online teacher (see ssld_zoo/distill/teacher.py and
                # benchmarks/teacher_speed.py): auto = bf16 on a GPU that has it, else fp32
                "precision": "auto", "fold_bn": True, "channels_last": True, "compile": False},
    # dict(path=, crops_per_image=1, views=None): train from a cache that `ssld-zoo label`
    # built instead of running the teacher (see ssld_zoo/distill/cache/)
    "teacher_cache": {"path": None, "crops_per_image": 1, "views": None},
    "student": {"name": None, "weights": None, "pretrained": False, "num_classes": None,
                "bn_mode": "train", "kwargs": {}},
    "loss": {"type": "SymmetricKL"},
    "loss_weight": 1.0,
    "hard_label_weight": 0.0,
    "data": {
        "labeled_roots": [], "unlabeled_roots": [], "val_root": None, "classes": None,
        "batch_size": 256,          # GLOBAL batch, split evenly over the processes
        "val_batch_size": None,     # per process; default: the per-process train batch
        "num_workers": 4,
        "input_size": 224, "resize": None, "scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3),
        "hflip": 0.5, "auto_augment": None, "interpolation": "bilinear",
        # dict(input_size=, resize=, interpolation=); None: the zoo card's eval transform
        "eval_transform": None,
        "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
        # dict(mixup_alpha=, cutmix_alpha=, prob=, switch_prob=): mix each batch before both
        # models see it ("function matching"; see ssld_zoo/distill/mixing.py)
        "mix": None,
    },
    "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                  "nesterov": False},
    "schedule": {"epochs": 100, "warmup_epochs": 0, "warmup_start_factor": 0.01,
                 "eta_min": 0.0},
    "runtime": {
        "seed": 0, "deterministic": False,
        "amp": "auto",              # auto | bf16 | fp16 | none (auto: bf16/fp16 on GPU, fp32 on CPU)
        "channels_last": "auto",    # auto (on with CUDA) | True | False
        "compile": False,           # True or torch.compile kwargs: compile the train step (mmengine cfg.compile)
        "ema": None,                # None | dict(momentum=2e-4, begin_iter=0)
        "sync_bn": False,           # SyncBatchNorm for the student under DDP (GPU only)
        "checkpoint_interval": 1, "max_keep_ckpts": 3, "val_interval": 1,
        "log_interval": 50, "tensorboard": True,
    },
    "export": {"name": None, "description": None},
}
_FREE_SECTIONS = {"loss", "optimizer"}  # their keys are checked by the loss / torch optimiser
_NULLABLE_SECTIONS = {"teacher", "teacher_cache"}
_AMP = ("auto", "bf16", "fp16", "none")


class RecipeError(ValueError):
    """A recipe key or value is invalid; the message names it and what is valid."""


def _as_dict(cfg: Any) -> dict:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def validate_recipe(cfg: Any, source: str = "recipe") -> dict:
    """Check every key of ``cfg`` against :data:`DEFAULTS` and return the full recipe (defaults
    filled in, plain dicts). Raises :class:`RecipeError` naming unknown keys and the valid ones."""
    cfg = _as_dict(cfg)
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise RecipeError(f"{source}: unknown key(s) {', '.join(unknown)}; valid top-level keys: "
                          f"{', '.join(sorted(DEFAULTS))}")
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = cfg.get(key, copy.deepcopy(default))
        if isinstance(default, dict):
            if value is None and key in _NULLABLE_SECTIONS:
                out[key] = None
                continue
            if isinstance(value, (str, os.PathLike)) and key in ("teacher", "student", "loss",
                                                                 "teacher_cache"):
                value = {"loss": "type", "teacher_cache": "path"}.get(key, "name")
                value = {value: str(cfg[key])}
            if not isinstance(value, dict):
                raise RecipeError(f"{source}: {key} must be a dict, got {value!r}")
            value = _as_dict(value)
            if key not in _FREE_SECTIONS:
                bad = sorted(set(value) - set(default))
                if bad:
                    raise RecipeError(f"{source}: unknown key(s) {', '.join(f'{key}.{b}' for b in bad)}; "
                                      f"valid keys of {key}: {', '.join(sorted(default))}")
            # A free section names its own type and keys; without a type (e.g. only
            # --cfg-options optimizer.lr=0.1) it refines the default one.
            merged = copy.deepcopy(default) if key not in _FREE_SECTIONS or "type" not in value \
                else {}
            merged.update(value)
            value = merged
        out[key] = value
    if out["teacher_cache"] is not None and out["teacher_cache"]["path"] is None:
        out["teacher_cache"] = None
    _check_values(out, source)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _need(ok: bool, source: str, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise RecipeError(f"{source}: {key}={value!r}: expected {expected}")


def _check_numbers(r: dict, source: str) -> None:
    """Types and ranges of the recipe's numeric keys (before anything compares or builds them)."""
    d, s, rt = r["data"], r["schedule"], r["runtime"]
    ints = {"data.batch_size": (d["batch_size"], 1), "data.num_workers": (d["num_workers"], 0),
            "data.input_size": (d["input_size"], 1), "runtime.seed": (rt["seed"], 0),
            "runtime.checkpoint_interval": (rt["checkpoint_interval"], 1),
            "runtime.val_interval": (rt["val_interval"], 1),
            "runtime.log_interval": (rt["log_interval"], 1),
            "runtime.max_keep_ckpts": (rt["max_keep_ckpts"], -1)}
    for key, (v, low) in ints.items():
        _need(isinstance(v, int) and not isinstance(v, bool) and v >= low, source, key, v,
              f"an integer >= {low}")
    for key, v in (("data.val_batch_size", d["val_batch_size"]), ("data.resize", d["resize"])):
        _need(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1), source,
              key, v, "None or an integer >= 1")
    for key, v in (("loss_weight", r["loss_weight"]), ("hard_label_weight", r["hard_label_weight"]),
                   ("schedule.warmup_epochs", s["warmup_epochs"]),
                   ("schedule.eta_min", s["eta_min"])):
        _need(_is_number(v) and v >= 0, source, key, v, "a number >= 0")
    _need(_is_number(s["warmup_start_factor"]) and 0 < s["warmup_start_factor"] <= 1, source,
          "schedule.warmup_start_factor", s["warmup_start_factor"], "a number in (0, 1]")
    _need(_is_number(d["hflip"]) and 0 <= d["hflip"] <= 1, source, "data.hflip", d["hflip"],
          "a probability in [0, 1]")
    for key in ("scale", "ratio", "mean", "std"):
        v, n = d[key], 2 if key in ("scale", "ratio") else 3
        _need(isinstance(v, (list, tuple)) and len(v) == n and all(_is_number(x) for x in v),
              source, f"data.{key}", v, f"{n} numbers")
    for who in ("teacher", "student"):
        if r[who] is not None:
            n = r[who].get("num_classes")
            _need(n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1),
                  source, f"{who}.num_classes", n, "None (from the weights or the teacher) or "
                  "an integer >= 1")


def _check_params(section: str, cls: type, params: dict, source: str) -> None:
    """``params`` against ``cls``'s signature: known names, numbers where it takes numbers."""
    import inspect
    sig = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls).parameters
    names = [n for n in sig if n not in ("self", "params")]
    if not any(p.kind is p.VAR_KEYWORD for p in sig.values()):
        bad = sorted(set(params) - set(names))
        if bad:
            keys = ", ".join(f"{section}.{b}" for b in bad)
            raise RecipeError(f"{source}: unknown key(s) {keys} for "
                              f"{getattr(cls, '__name__', cls)}; valid: {', '.join(names)}")
    for key, value in params.items():
        default = sig[key].default if key in sig else None
        where = f"{section}.{key}"
        if isinstance(default, bool):
            _need(isinstance(value, bool), source, where, value, "True or False")
        elif _is_number(default):
            _need(_is_number(value), source, where, value, "a number")
        elif isinstance(default, tuple) and all(_is_number(x) for x in default):
            _need(isinstance(value, (list, tuple)) and len(value) == len(default)
                  and all(_is_number(x) for x in value), source, where, value,
                  f"{len(default)} numbers")


def _check_optimizer(opt: dict, source: str) -> None:
    """``optimizer.type``: a torch (or mmengine-registered) optimiser; its keys and numbers."""
    from mmengine.registry import OPTIMIZERS
    import mmengine.optim  # noqa: F401  (registers torch's optimisers)
    kind = opt.get("type")
    cls = kind if isinstance(kind, type) else OPTIMIZERS.get(kind) if isinstance(kind, str) \
        else None
    if cls is None:
        import torch
        known = sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                       and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
                       and n != "Optimizer")
        raise RecipeError(f"{source}: optimizer.type={kind!r} is not a known optimiser; "
                          f"expected one of torch.optim's: {', '.join(known)}")
    _check_params("optimizer", cls, {k: v for k, v in opt.items() if k != "type"}, source)


def _check_values(r: dict, source: str) -> None:
    _check_numbers(r, source)
    _check_optimizer(r["optimizer"], source)
    if isinstance(r["loss"], dict):
        from ssld_zoo.distill.losses import LOSSES
        if r["loss"].get("type") in LOSSES:
            _check_params("loss", LOSSES[r["loss"]["type"]],
                          {k: v for k, v in r["loss"].items() if k != "type"}, source)
    if not r["student"].get("name"):
        raise RecipeError(f"{source}: student.name is required (a zoo architecture, e.g. "
                          f"'resnet50_vd'; see `ssld-zoo list`)")
    if r["teacher"] is not None and not r["teacher"].get("name"):
        raise RecipeError(f"{source}: teacher.name is required (or teacher=None for "
                          f"label-only training)")
    if r["teacher"] is None and r["hard_label_weight"] <= 0:
        raise RecipeError(f"{source}: teacher=None trains on labels only, so "
                          f"hard_label_weight must be > 0")
    d = r["data"]
    for k in ("labeled_roots", "unlabeled_roots"):
        if isinstance(d[k], (str, os.PathLike)):
            d[k] = [d[k]]
        d[k] = [str(p) for p in d[k]]
    if not d["labeled_roots"] and not d["unlabeled_roots"]:
        raise RecipeError(f"{source}: no training data: set data.labeled_roots and/or "
                          f"data.unlabeled_roots (e.g. --cfg-options "
                          f"data.labeled_roots=\"['/data/imagenet/train']\")")
    if (r["hard_label_weight"] > 0 or r["teacher"] is None) and not d["labeled_roots"]:
        raise RecipeError(f"{source}: hard-label training needs data.labeled_roots")
    if r["runtime"]["amp"] not in _AMP:
        raise RecipeError(f"{source}: runtime.amp={r['runtime']['amp']!r}; expected one of {_AMP}")
    s = r["schedule"]
    if not (isinstance(s["epochs"], int) and s["epochs"] > 0):
        raise RecipeError(f"{source}: schedule.epochs must be a positive integer")
    if not 0 <= s["warmup_epochs"] < s["epochs"]:
        raise RecipeError(f"{source}: schedule.warmup_epochs={s['warmup_epochs']} must be in "
                          f"[0, epochs={s['epochs']})")
    t = r["teacher"]
    from ssld_zoo.distill.teacher import PRECISIONS
    if t is not None and t["precision"] not in PRECISIONS:
        raise RecipeError(f"{source}: teacher.precision={t['precision']!r}; expected one of "
                          f"{PRECISIONS}")
    c = r["teacher_cache"]
    if c is not None:
        if t is None:
            raise RecipeError(f"{source}: teacher_cache needs the teacher it was built from "
                              f"(teacher=None)")
        for k in ("crops_per_image", "views"):
            if c[k] is not None and not (isinstance(c[k], int) and c[k] >= 1):
                raise RecipeError(f"{source}: teacher_cache.{k}={c[k]!r}: expected an integer "
                                  f">= 1")
        if d["batch_size"] % c["crops_per_image"]:
            raise RecipeError(f"{source}: data.batch_size={d['batch_size']} (views per step) "
                              f"is not a multiple of teacher_cache.crops_per_image="
                              f"{c['crops_per_image']}")
    if d["mix"] is not None:
        from ssld_zoo.distill.mixing import BatchMix
        if not isinstance(d["mix"], dict):
            raise RecipeError(f"{source}: data.mix must be None or dict(mixup_alpha=, "
                              f"cutmix_alpha=, prob=, switch_prob=), got {d['mix']!r}")
        try:
            BatchMix(**d["mix"])
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{source}: data.mix: {e}") from e
    ema = r["runtime"]["ema"]
    if ema is not None and (not isinstance(ema, dict) or set(ema) - {"momentum", "begin_iter"}):
        raise RecipeError(f"{source}: runtime.ema must be None or dict(momentum=, begin_iter=)")


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: ``$SSLD_ZOO_RECIPES`` (os.pathsep-separated folders),
    then the recipes that ship with ssld-zoo (:func:`ssld_zoo.shipped.recipes_dir`)."""
    from ssld_zoo.shipped import recipes_dir

    dirs = [Path(p) for p in os.environ.get("SSLD_ZOO_RECIPES", "").split(os.pathsep) if p]
    dirs.append(recipes_dir())
    return [d for d in dirs if d is not None and d.is_dir()]


def _recipe_files() -> Iterable[tuple[str, Path]]:
    """``(name, path)`` of every recipe: ``recipes/r50d.py`` is ``r50d``, and a recipe in a
    sub-folder, ``recipes/cifar10/teacher.py``, is ``cifar10/teacher``. Files and folders whose
    name starts with ``_`` (``_base_``) are building blocks, not recipes."""
    seen = set()
    for d in recipe_dirs():
        files = sorted(d.glob("*.py")) + sorted(
            f for f in d.glob("*/*.py") if not f.parent.name.startswith("_"))
        for f in files:
            name = f.relative_to(d).with_suffix("").as_posix()
            if name not in seen and not f.name.startswith("_"):
                seen.add(name)
                yield name, f


def resolve_recipe(name_or_path: str | os.PathLike) -> Path:
    """A recipe file from a path or a name (``r50d`` -> ``recipes/r50d.py``,
    ``cifar10/ssld`` -> ``recipes/cifar10/ssld.py``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    name = p.as_posix()[:-3] if p.as_posix().endswith(".py") else p.as_posix()
    for known, f in _recipe_files():
        if known == name:
            return f
    names = ", ".join(n for n, _ in _recipe_files()) or "(none found)"
    raise FileNotFoundError(f"recipe {str(name_or_path)!r} is neither a file nor a known recipe; "
                            f"known recipes: {names}")


def recipe_name(path: str | os.PathLike) -> str:
    """The name a recipe file is listed under (``recipes/cifar10/ssld.py`` -> ``cifar10/ssld``);
    the file stem for a file outside :func:`recipe_dirs`."""
    p = Path(path).resolve()
    for d in recipe_dirs():
        try:
            return p.relative_to(d.resolve()).with_suffix("").as_posix()
        except ValueError:
            continue
    return p.stem


def load_recipe(name_or_path: str | os.PathLike, cfg_options: dict | None = None) -> dict:
    """Read a recipe (with its ``_base_`` files), apply ``--cfg-options``-style overrides
    (``{"data.labeled_roots": [...]}``) and validate it. Returns the full recipe dict, with
    ``_path`` set to the file it came from."""
    from mmengine.config import Config
    path = resolve_recipe(name_or_path)
    try:
        cfg = Config.fromfile(str(path), lazy_import=False)
    except Exception as e:
        raise RecipeError(f"{path}: cannot be read as an mmengine config ({e})") from e
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    recipe = validate_recipe(cfg, str(path))
    recipe["_path"] = str(path)
    return recipe


def list_recipes() -> list[tuple[str, str, Path]]:
    """``(name, one-line description, path)`` of every recipe found by :func:`recipe_dirs`."""
    from mmengine.config import Config
    out = []
    for name, f in _recipe_files():
        try:
            desc = str(Config.fromfile(str(f), lazy_import=False).get("description", ""))
        except Exception as e:  # a broken recipe is listed with its error, not hidden
            desc = f"(cannot be read: {e})"
        out.append((name, desc.strip().splitlines()[0] if desc.strip() else "", f))
    return out
