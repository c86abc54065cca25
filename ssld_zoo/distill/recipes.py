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

import os
from pathlib import Path
from typing import Any, Iterable

from mmengine.config import Config

__all__ = [
    "RecipeError",
    "load_recipe",
    "check_recipe",
    "compose_recipe",
    "recipe_dirs",
    "recipe_name",
    "resolve_recipe",
    "list_recipes",
    "train_images_cfg",
]


class RecipeError(ValueError):
    """A recipe key or value is invalid; the message names it and what is valid."""


def check_recipe(cfg: Config, source: str | None = None) -> Config:
    """Check ``cfg`` against the signatures of the classes it names
    (:func:`ssld_zoo.engine.config_check.check_config`) and what a distillation needs;
    returns it. Raises :class:`RecipeError` naming the bad key and what is expected."""
    from ssld_zoo.engine.config_check import ConfigError, check_config

    source = source or getattr(cfg, "filename", None) or "recipe"
    try:
        check_config(cfg, source)
    except ConfigError as e:
        raise RecipeError(str(e)) from None
    model = cfg["model"]
    if model.get("type") == "Distiller" and model.get("student") is None:
        raise RecipeError(
            f"{source}: model.student is required (e.g. dict(type='ZooModel', "
            f"name='resnet50_vd'); see `ssld-zoo list`)"
        )
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
            f for f in d.glob("*/*.py") if not f.parent.name.startswith("_")
        )
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
    raise FileNotFoundError(
        f"recipe {str(name_or_path)!r} is neither a file nor a known recipe; known recipes: {names}"
    )


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
        return (
            os.path.normpath(folder / p)
            if isinstance(p, (str, os.PathLike)) and not os.path.isabs(p)
            else p
        )

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


def compose_recipe(
    settings: dict,
    filename: str,
    bases: tuple[str, ...] = ("models/distiller.py", "default_runtime.py"),
) -> Config:
    """A recipe written in Python rather than in a file: ``settings`` (nested dicts, or dotted
    keys as ``--cfg-options``) merged into the shipped ``recipes/_base_`` files ``bases``, as a
    file with ``_base_ = [...]`` would be; checked (:func:`check_recipe`). ``filename`` names
    the run (work dir, export)."""
    from ssld_zoo.shipped import recipes_dir

    cfg = Config()
    for base in bases:
        cfg.merge_from_dict(
            Config.fromfile(str(recipes_dir() / "_base_" / base), lazy_import=False).to_dict()
        )
    cfg.merge_from_dict(settings)
    return check_recipe(
        Config(cfg.to_dict(), cfg_text=f"# {filename}", filename=filename), filename
    )


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
