"""Recipes: mmengine Runner configs, looked up by name, read, and checked before a run.

A recipe *is* the Runner's arguments (``model=dict(type="Distiller", teacher=..., student=...,
loss=...)``, ``train_dataloader``, ``val_dataloader``, ``val_evaluator``, ``optim_wrapper``,
``param_scheduler``, ``train_cfg``, ``default_hooks``, ``custom_hooks``...), with ``_base_`` files
for datasets, schedules, models and runtime (``recipes/_base_/``), as mmpretrain's configs:
``Runner.from_cfg(Config.fromfile(recipe))`` trains one unchanged. :func:`load_recipe` adds what
``ssld-zoo distill`` promises on top: recipes by name, relative data roots anchored to the
recipe's folder, ``--cfg-options``, and :func:`check_recipe`, which checks every ``type=`` dict
against the signature of the class it names (unknown keys, numbers, flags, required arguments),
so a mistake is one line naming the key and what is expected, before anything is built.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Iterable

from mmengine.config import Config

__all__ = ["RecipeError", "load_recipe", "check_recipe", "compose_recipe", "recipe_dirs", "recipe_name",
           "resolve_recipe", "list_recipes", "train_images_cfg"]


class RecipeError(ValueError):
    """A recipe key or value is invalid; the message names it and what is valid."""


def _registries() -> dict[str, Any]:
    """Which registry a nested ``type=`` dict is looked up in, by its key."""
    import mmengine.dataset  # noqa: F401  (registers DefaultSampler, pseudo_collate)
    import mmengine.evaluator  # noqa: F401
    import mmengine.hooks  # noqa: F401
    import mmengine.optim  # noqa: F401  (registers torch's optimisers and schedulers)
    import mmengine.runner  # noqa: F401
    from mmengine import registry as R

    import ssld_zoo.distill  # noqa: F401  (registers every class a recipe names)
    return {"model": R.MODELS, "teacher": R.MODELS, "student": R.MODELS, "loss": R.MODELS,
            "data_preprocessor": R.MODELS, "optim_wrapper": R.OPTIM_WRAPPERS,
            "optimizer": R.OPTIMIZERS, "param_scheduler": R.PARAM_SCHEDULERS,
            "dataset": R.DATASETS, "images": R.DATASETS, "transform": R.TRANSFORMS,
            "sampler": R.DATA_SAMPLERS, "collate_fn": R.FUNCTIONS, "train_cfg": R.LOOPS,
            "val_evaluator": R.METRICS, "hook": R.HOOKS, "vis_backend": R.VISBACKENDS,
            "visualizer": R.VISUALIZERS}


# Arguments the Runner passes itself (default_args), never written in a recipe.
_INJECTED = {"self", "optimizer", "params", "dataset", "model", "runner", "dataloader",
             "epoch_length", "seed", "module", "batch"}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _signature(obj: Any) -> dict[str, inspect.Parameter] | None:
    """The parameters of a class's ``__init__`` (the first in its MRO that names them, past
    pass-through ``(*args, **kwargs)`` overrides) or of a function."""
    for fn in ([c.__init__ for c in inspect.getmro(obj)] if inspect.isclass(obj) else [obj]):
        try:
            params = dict(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            return None
        if any(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"
               for n, p in params.items()):
            return params
    return None


def _check_value(where: str, value: Any, default: Any) -> str | None:
    """What ``value`` should have been, judged by the parameter's default; None when fine."""
    if value is None or default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "True or False"
    if _is_num(default):  # an int default may take a float (SGD's momentum=0)
        return None if _is_num(value) else "a number"
    if isinstance(default, tuple) and default and all(_is_num(x) for x in default):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default) and \
            all(_is_num(x) for x in value)
        return None if ok else f"{len(default)} numbers"
    return None


def _check_typed(where: str, cfg: dict, registry: Any, source: str,
                 drop: Iterable[str] = ()) -> None:
    """``cfg`` (a ``type=`` dict) against the signature of the class its registry names."""
    kind = cfg.get("type")
    obj = kind if callable(kind) else registry.get(kind) if isinstance(kind, str) else None
    if obj is None:
        known = sorted(k for k in registry.module_dict)[:40]
        raise RecipeError(f"{source}: {where}.type={kind!r} is not a registered "
                          f"{registry.name} name; expected one of: {', '.join(known)}"
                          f"{' ...' if len(registry.module_dict) > 40 else ''}")
    params = _signature(obj)
    if params is None:
        return
    name = getattr(obj, "__name__", str(kind))
    given = {k: v for k, v in cfg.items() if k not in ("type", "_scope_", *drop)}
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    valid = [n for n, p in params.items() if n not in _INJECTED and
             p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    bad = sorted(set(given) - set(params)) if not open_kwargs else []
    if bad:
        hint = (f" (a section inherited from a _base_ file merges into yours: write "
                f"{where}=dict(_delete_=True, type=..., ...) to replace it)" if
                where.endswith("optimizer") else "")
        raise RecipeError(f"{source}: unknown key(s) {', '.join(f'{where}.{b}' for b in bad)} "
                          f"for {name}; valid: {', '.join(valid)}{hint}")
    for key, value in given.items():
        if key in params:
            want = _check_value(f"{where}.{key}", value, params[key].default)
            if want:
                raise RecipeError(f"{source}: {where}.{key}={value!r}: expected {want}")
    if registry.name in ("model", "dataset", "loop", "hook", "metric", "transform"):
        missing = [n for n in valid
                   if params[n].default is inspect.Parameter.empty and n not in given]
        if missing:
            raise RecipeError(f"{source}: {where}.{missing[0]} is required for {name}")


def _walk(where: str, value: Any, source: str, registries: dict, key: str) -> None:
    from ssld_zoo.distill.distiller import RUN_KEYS
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _walk(f"{where}[{i}]", v, source, registries, key)
        return
    if not isinstance(value, dict):
        return
    registry = registries.get(key)
    if registry is not None and "type" in value:
        drop = RUN_KEYS if key in ("teacher", "student") else ()
        _check_typed(where, value, registry, source, drop)
    for k, v in value.items():
        child = {"custom_hooks": "hook", "vis_backends": "vis_backend"}.get(k, k)
        if key == "default_hooks":
            child = "hook"
        _walk(f"{where}.{k}", v, source, registries, child)


def check_recipe(cfg: Config, source: str | None = None) -> Config:
    """Check ``cfg`` against the signatures of the classes it names (see the module doc);
    returns it. Raises :class:`RecipeError` naming the bad key and what is expected."""
    source = source or getattr(cfg, "filename", None) or "recipe"
    registries = _registries()
    plain = cfg.to_dict()
    for k in ("model", "train_dataloader", "train_cfg", "optim_wrapper"):
        if not isinstance(plain.get(k), dict):
            raise RecipeError(f"{source}: {k} is required (an mmengine Runner config; see "
                              f"recipes/_base_/ and docs/distillation.md)")
    for key, value in plain.items():
        _walk(key, value, source, registries, key)
    for loader in ("train_dataloader", "val_dataloader"):
        d = plain.get(loader)
        if isinstance(d, dict):
            for k, low in (("batch_size", 1), ("num_workers", 0)):
                v = d.get(k)
                if v is not None and not (isinstance(v, int) and not isinstance(v, bool)
                                          and v >= low):
                    raise RecipeError(f"{source}: {loader}.{k}={v!r}: expected an integer "
                                      f">= {low}")
    model = plain["model"]
    if model.get("type") == "Distiller" and model.get("student") is None:
        raise RecipeError(f"{source}: model.student is required (e.g. dict(type='ZooModel', "
                          f"name='resnet50_vd'); see `ssld-zoo list`)")
    return cfg


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


def train_images_cfg(cfg: Any) -> dict:
    """The config of the images a recipe trains on (inside a ``CachedViewDataset``, its
    ``images``)."""
    ds = cfg["train_dataloader"]["dataset"]
    return ds["images"] if ds.get("type") == "CachedViewDataset" else ds


def _anchor_data_paths(cfg: Config, folder: Path) -> None:
    """Relative data roots written in a recipe are relative to the recipe's folder, not to
    wherever the command runs (shipped recipes write ``{{ fileDirname }}/...``); those given with
    ``--cfg-options`` (applied after this) stay relative to the working directory."""
    def anchor(p: Any) -> Any:
        return os.path.normpath(folder / p) if isinstance(p, (str, os.PathLike)) and \
            not os.path.isabs(p) else p

    sets = []
    for loader in ("train_dataloader", "val_dataloader"):
        ds = (cfg.get(loader) or {}).get("dataset")
        if isinstance(ds, dict):
            sets += [ds] + ([ds["images"]] if isinstance(ds.get("images"), dict) else [])
    for ds in sets:
        for key in ("labeled_roots", "unlabeled_roots"):
            roots = ds.get(key)
            if isinstance(roots, (list, tuple)):
                ds[key] = [anchor(p) for p in roots]
            elif roots is not None:
                ds[key] = anchor(roots)


def load_recipe(name_or_path: str | os.PathLike, cfg_options: dict | None = None) -> Config:
    """Read a recipe (with its ``_base_`` files), anchor its relative data roots, apply
    ``--cfg-options`` overrides (``{"train_dataloader.batch_size": 64}``, as mmengine's
    ``Config.merge_from_dict``) and check it (:func:`check_recipe`)."""
    path = resolve_recipe(name_or_path)
    try:
        cfg = Config.fromfile(str(path), lazy_import=False)
    except Exception as e:
        raise RecipeError(f"{path}: cannot be read as an mmengine config ({e})") from e
    _anchor_data_paths(cfg, path.parent)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return check_recipe(cfg, str(path))


def compose_recipe(settings: dict, filename: str,
                   bases: tuple[str, ...] = ("models/distiller.py", "default_runtime.py")
                   ) -> Config:
    """A recipe written in Python rather than in a file: ``settings`` (nested dicts, or dotted
    keys as ``--cfg-options``) merged into the shipped ``recipes/_base_`` files ``bases``, as a
    file with ``_base_ = [...]`` would be; checked (:func:`check_recipe`). ``filename`` names
    the run (work dir, export)."""
    from ssld_zoo.shipped import recipes_dir
    cfg = Config()
    for base in bases:
        cfg.merge_from_dict(Config.fromfile(str(recipes_dir() / "_base_" / base),
                                            lazy_import=False).to_dict())
    cfg.merge_from_dict(settings)
    return check_recipe(Config(cfg.to_dict(), filename=filename), filename)


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
