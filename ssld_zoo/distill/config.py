"""Recipes: mmengine Python config files, their defaults, schema, validation and lookup.

A recipe sets a few top-level variables (``teacher``, ``student``, ``loss``, ``data``,
``optimizer``, ``schedule``, ``runtime``, ``export``, ``description``) and may inherit
``_base_`` files (``recipes/_base_/``: datasets, schedules, runtime). Every recipe is laid over
``recipes/_base_/defaults.py``, the one place that holds the defaults, the way mmengine merges
a ``_base_`` file (``_delete_=True`` replaces a section instead of merging into it). The result
is checked against :data:`SCHEMA`: an unknown key is an error listing the valid ones, a value
of the wrong type names the key and the type expected. :func:`load_recipe` returns the recipe
as an mmengine ``Config``; the runner records that same object.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from mmengine.config import Config

from ssld_zoo.distill.teacher import PRECISIONS

__all__ = ["SCHEMA", "RecipeError", "defaults_file", "recipe_defaults", "load_recipe",
           "validate_recipe", "resolve_recipe", "recipe_dirs", "recipe_name", "list_recipes"]


class RecipeError(ValueError):
    """A recipe key or value is invalid; the message names it and what is valid."""


# --------------------------------------------------------------------------- schema

@dataclass(frozen=True)
class Expect:
    """What a recipe key must hold: ``ok(value)`` and the words the error uses."""

    text: str
    ok: Callable[[Any], bool]

    def __or__(self, other: "Expect") -> "Expect":
        return Expect(f"{self.text} or {other.text}", lambda v: self.ok(v) or other.ok(v))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(low: int) -> Expect:
    return Expect(f"an integer >= {low}", lambda v: _is_int(v) and v >= low)


def number(low: float = 0.0) -> Expect:
    return Expect(f"a number >= {low:g}", lambda v: _is_num(v) and v >= low)


def numbers(n: int) -> Expect:
    return Expect(f"{n} numbers", lambda v: isinstance(v, (list, tuple)) and len(v) == n
                  and all(_is_num(x) for x in v))


def one_of(*choices: Any) -> Expect:
    return Expect(f"one of {', '.join(map(repr, choices))}",
                  lambda v: any(v == c and type(v) is type(c) for c in choices))


NONE = Expect("None", lambda v: v is None)
BOOL = Expect("True or False", lambda v: isinstance(v, bool))
STR = Expect("a string", lambda v: isinstance(v, str))
PATH = Expect("a path", lambda v: isinstance(v, (str, os.PathLike)))
PATHS = Expect("a path or a list of paths", lambda v: isinstance(v, (str, os.PathLike)) or (
    isinstance(v, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in v)))
STRS = Expect("a list of strings", lambda v: isinstance(v, (list, tuple))
              and all(isinstance(s, str) for s in v))
DICT = Expect("a dict", lambda v: isinstance(v, dict))
SECTION = Expect("a dict", lambda v: isinstance(v, dict))
FREE = Expect("a dict with a type", lambda v: isinstance(v, dict))  # keys: its class's signature

_INTERP = ("nearest", "bilinear", "bicubic")

NUM_CLASSES = Expect(f"None (from the weights or the teacher) or {integer(1).text}",
                     (NONE | integer(1)).ok)

SCHEMA: dict[str, Expect] = {
    "description": STR,
    "teacher": SECTION | NONE,
    "teacher.name": STR | NONE, "teacher.weights": PATH | NONE, "teacher.pretrained": BOOL,
    "teacher.num_classes": NUM_CLASSES, "teacher.bn_mode": one_of("train", "eval"),
    "teacher.kwargs": DICT, "teacher.precision": one_of(*PRECISIONS),
    "teacher.fold_bn": BOOL, "teacher.channels_last": BOOL, "teacher.compile": BOOL | DICT,
    "teacher_cache": SECTION | NONE,
    "teacher_cache.path": PATH | NONE, "teacher_cache.crops_per_image": integer(1),
    "teacher_cache.views": integer(1) | NONE,
    "student": SECTION,
    "student.name": STR | NONE, "student.weights": PATH | NONE, "student.pretrained": BOOL,
    "student.num_classes": NUM_CLASSES, "student.bn_mode": one_of("train", "eval"),
    "student.kwargs": DICT,
    "loss": FREE,
    "loss_weight": number(0), "hard_label_weight": number(0),
    "data": SECTION,
    "data.labeled_roots": PATHS, "data.unlabeled_roots": PATHS, "data.val_root": PATH | NONE,
    "data.classes": STRS | NONE, "data.allow_empty_classes": BOOL,
    "data.batch_size": integer(1),
    "data.val_batch_size": integer(1) | NONE, "data.num_workers": integer(0),
    "data.input_size": integer(1), "data.resize": integer(1) | NONE, "data.scale": numbers(2),
    "data.ratio": numbers(2),
    "data.hflip": Expect("a probability in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1),
    "data.auto_augment": STR | NONE, "data.interpolation": one_of(*_INTERP),
    "data.eval_transform": DICT | NONE, "data.mix": DICT | NONE,
    "optimizer": FREE,
    "schedule": SECTION,
    "schedule.epochs": integer(1), "schedule.warmup_epochs": number(0),
    "schedule.warmup_start_factor": Expect("a number in (0, 1]",
                                           lambda v: _is_num(v) and 0 < v <= 1),
    "schedule.eta_min": number(0),
    "runtime": SECTION,
    "runtime.seed": integer(0), "runtime.deterministic": BOOL,
    "runtime.amp": one_of("auto", "bf16", "fp16", "none"),
    "runtime.channels_last": one_of("auto", True, False), "runtime.compile": BOOL | DICT,
    "runtime.ema": DICT | NONE, "runtime.sync_bn": BOOL,
    "runtime.checkpoint_interval": integer(1), "runtime.max_keep_ckpts": integer(-1),
    "runtime.val_interval": integer(1), "runtime.log_interval": integer(1),
    "runtime.tensorboard": BOOL,
    "export": SECTION,
    "export.name": STR | NONE, "export.description": STR | NONE,
}


def defaults_file() -> Path:
    """``recipes/_base_/defaults.py`` (shipped inside the package when pip-installed)."""
    from ssld_zoo.shipped import recipes_dir
    return recipes_dir() / "_base_" / "defaults.py"


def recipe_defaults() -> Config:
    """The defaults every recipe is laid over, as an mmengine Config."""
    return Config.fromfile(str(defaults_file()), lazy_import=False)


def _plain(cfg: Any) -> dict:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def _lay_over(recipe: dict, base: dict) -> dict:
    """``recipe`` merged into ``base`` as mmengine merges a ``_base_`` file (a dict merges key
    by key unless it says ``_delete_=True``; anything else replaces), except that a dict may
    also replace a None default (``runtime.ema=None`` -> ``dict(momentum=...)``), which
    mmengine refuses."""
    out = dict(base)
    for key, value in recipe.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and \
                not value.get("_delete_", False):
            out[key] = _lay_over(value, out[key])
        elif isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if k != "_delete_"}
        else:
            out[key] = value
    return out


def _check_keys(recipe: dict, defaults: dict, source: str) -> None:
    unknown = sorted(set(recipe) - set(defaults))
    if unknown:
        raise RecipeError(f"{source}: unknown key(s) {', '.join(unknown)}; valid top-level keys: "
                          f"{', '.join(sorted(defaults))}")
    for key, value in recipe.items():
        if SCHEMA[key] is FREE or not isinstance(value, dict) or \
                not isinstance(defaults[key], dict):
            continue
        bad = sorted(set(value) - set(defaults[key]))
        if bad:
            raise RecipeError(f"{source}: unknown key(s) {', '.join(f'{key}.{b}' for b in bad)}; "
                              f"valid keys of {key}: {', '.join(sorted(defaults[key]))}")


def _check_types(recipe: dict, source: str) -> None:
    for key, value in recipe.items():
        _expect(source, key, value)
        if isinstance(value, dict) and SCHEMA[key] is not FREE:
            for sub, v in value.items():
                _expect(source, f"{key}.{sub}", v)


def _expect(source: str, key: str, value: Any) -> None:
    want = SCHEMA[key]
    if not want.ok(value):
        raise RecipeError(f"{source}: {key}={value!r}: expected {want.text}")


def _need(ok: bool, source: str, message: str) -> None:
    if not ok:
        raise RecipeError(f"{source}: {message}")


def validate_recipe(cfg: Config | dict, source: str | None = None) -> Config:
    """``cfg`` laid over :func:`recipe_defaults` and checked against :data:`SCHEMA` and the
    rules between keys; returns the full recipe as a Config (``.filename`` is the recipe's
    file, or ``source``). Raises :class:`RecipeError` naming the bad key and what is valid."""
    filename = getattr(cfg, "filename", None) or source or "recipe"
    source = source or filename
    defaults = _plain(recipe_defaults())
    given = _plain(cfg)
    given.pop("_base_", None)
    _check_keys(given, defaults, source)  # laying over adds no key the recipe lacks
    merged = _lay_over(given, defaults)
    _check_types(merged, source)
    _check_rules(merged, source)
    text = getattr(cfg, "text", "") if isinstance(cfg, Config) else ""
    return Config(merged, cfg_text=text or f"# {source}", filename=filename)


def _check_params(section: str, cls: type, params: dict, source: str) -> None:
    """``params`` against ``cls``'s signature: known names, numbers where it takes numbers."""
    import inspect
    sig = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls).parameters
    names = [n for n in sig if n not in ("self", "params")]
    if not any(p.kind is p.VAR_KEYWORD for p in sig.values()):
        bad = sorted(set(params) - set(names))
        if bad:
            keys = ", ".join(f"{section}.{b}" for b in bad)
            hint = (f" (a section inherited from a _base_ file or the defaults merges into "
                    f"yours: set {section}=dict(type=..., _delete_=True, ...) to replace it)"
                    if section == "optimizer" else "")
            raise RecipeError(f"{source}: unknown key(s) {keys} for "
                              f"{getattr(cls, '__name__', cls)}; valid: {', '.join(names)}{hint}")
    for key, value in params.items():
        default = sig[key].default if key in sig else None
        where = f"{section}.{key}"
        if isinstance(default, bool):
            _need(isinstance(value, bool), source, f"{where}={value!r}: expected True or False")
        elif _is_num(default):
            _need(_is_num(value), source, f"{where}={value!r}: expected a number")
        elif isinstance(default, tuple) and all(_is_num(x) for x in default):
            _need(numbers(len(default)).ok(value), source,
                  f"{where}={value!r}: expected {len(default)} numbers")


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


def _check_rules(r: dict, source: str) -> None:
    """What no single key's type says: required names, data, and keys that must agree."""
    from ssld_zoo.distill.losses import LOSSES
    _check_optimizer(r["optimizer"], source)
    if r["loss"].get("type") in LOSSES:
        _check_params("loss", LOSSES[r["loss"]["type"]],
                      {k: v for k, v in r["loss"].items() if k != "type"}, source)
    t, s, d, c = r["teacher"], r["student"], r["data"], r["teacher_cache"]
    _need(bool(s["name"]), source, "student.name is required (a zoo architecture, e.g. "
          "'resnet50_vd'; see `ssld-zoo list`)")
    _need(t is None or bool(t["name"]), source, "teacher.name is required (or teacher=None "
          "for label-only training)")
    _need(t is not None or r["hard_label_weight"] > 0, source, "teacher=None trains on labels "
          "only, so hard_label_weight must be > 0")
    for k in ("labeled_roots", "unlabeled_roots"):
        d[k] = [str(p) for p in ([d[k]] if isinstance(d[k], (str, os.PathLike)) else d[k])]
    _need(bool(d["labeled_roots"] or d["unlabeled_roots"]), source,
          "no training data: set data.labeled_roots and/or data.unlabeled_roots (e.g. "
          "--cfg-options data.labeled_roots=\"['/data/imagenet/train']\")")
    _need(not ((r["hard_label_weight"] > 0 or t is None) and not d["labeled_roots"]), source,
          "hard-label training needs data.labeled_roots")
    sch = r["schedule"]
    _need(sch["warmup_epochs"] < sch["epochs"], source,
          f"schedule.warmup_epochs={sch['warmup_epochs']} must be in [0, epochs="
          f"{sch['epochs']})")
    if c is not None and c["path"] is None:
        r["teacher_cache"] = c = None
    if c is not None:
        _need(t is not None, source, "teacher_cache needs the teacher it was built from "
              "(teacher=None)")
        _need(d["batch_size"] % c["crops_per_image"] == 0, source,
              f"data.batch_size={d['batch_size']} (views per step) is not a multiple of "
              f"teacher_cache.crops_per_image={c['crops_per_image']}")
    if d["eval_transform"] is not None:
        from ssld_zoo.registry import EvalTransform
        try:
            EvalTransform.check_overrides(d["eval_transform"], "data.eval_transform")
        except ValueError as e:
            raise RecipeError(f"{source}: {e}") from None
    if d["mix"] is not None:
        from ssld_zoo.distill.mixing import BatchMix
        try:
            BatchMix(**d["mix"])
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{source}: data.mix: {e}") from e
    ema = r["runtime"]["ema"]
    _need(ema is None or not set(ema) - {"momentum", "begin_iter"}, source,
          f"runtime.ema={ema!r}: expected None or dict(momentum=, begin_iter=)")


# --------------------------------------------------------------------------- lookup

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


def _anchor_data_paths(cfg: Config, folder: Path) -> None:
    """Relative data roots written in a recipe (or its ``_base_`` files) are relative to the
    recipe's folder, not to wherever the command runs; those given with ``--cfg-options``
    (applied after this) stay relative to the working directory, as any command-line path."""
    data = cfg.get("data")
    if not isinstance(data, dict):
        return

    def anchor(p: Any) -> Any:
        return os.path.normpath(folder / p) if isinstance(p, (str, os.PathLike)) and \
            not os.path.isabs(p) else p

    for key in ("labeled_roots", "unlabeled_roots"):
        roots = data.get(key)
        if isinstance(roots, (list, tuple)):
            data[key] = [anchor(p) for p in roots]
        elif roots is not None:
            data[key] = anchor(roots)
    if data.get("val_root") is not None:
        data["val_root"] = anchor(data["val_root"])


def load_recipe(name_or_path: str | os.PathLike, cfg_options: dict | None = None) -> Config:
    """Read a recipe (with its ``_base_`` files), apply ``--cfg-options`` overrides
    (``{"data.labeled_roots": [...]}``, as mmengine's ``Config.merge_from_dict``), lay it over
    the defaults and validate it (:func:`validate_recipe`)."""
    path = resolve_recipe(name_or_path)
    try:
        cfg = Config.fromfile(str(path), lazy_import=False)
    except Exception as e:
        raise RecipeError(f"{path}: cannot be read as an mmengine config ({e})") from e
    _anchor_data_paths(cfg, path.parent)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return validate_recipe(cfg, str(path))


def list_recipes() -> list[tuple[str, str, Path]]:
    """``(name, one-line description, path)`` of every recipe found by :func:`recipe_dirs`."""
    out = []
    for name, f in _recipe_files():
        try:
            desc = str(Config.fromfile(str(f), lazy_import=False).get("description", ""))
        except Exception as e:  # a broken recipe is listed with its error, not hidden
            desc = f"(cannot be read: {e})"
        out.append((name, desc.strip().splitlines()[0] if desc.strip() else "", f))
    return out
