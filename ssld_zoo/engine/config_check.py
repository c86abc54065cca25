"""One-line errors for a Runner config, from the signatures of the classes it names.

Every ``type=`` dict of a config (the model and its teacher, student, loss and preprocessor;
datasets, transforms, samplers, collate functions; the optimiser, its wrapper and schedulers;
loops, hooks, metrics) is looked up in its mmengine registry and checked against the signature of
what it names: unknown keys (when it takes no ``**kwargs``), numbers where a parameter's default
is a number, True/False where it is a flag, and required arguments. A mistake is then one line
naming the key and what is expected, before anything is built; there is no parallel schema to
keep in step with the classes.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Iterable

__all__ = ["ConfigError", "check_config"]

# Keys of a teacher/student spec that say how it runs, not which model it is
# (ssld_zoo.distill.distiller.RUN_KEYS: checked there, not against the model's builder).
_RUN_KEYS = (
    "bn_mode",
    "precision",
    "fold_bn",
    "channels_last",
    "compile",
    "mean",
    "std",
    "input_size",
    "class_map",
)


class ConfigError(ValueError):
    """A config key or value is invalid; the message names it and what is valid."""


def _registries() -> dict[str, Any]:
    """Which registry a nested ``type=`` dict is looked up in, by its key."""
    import mmengine.dataset  # noqa: F401  (registers DefaultSampler, pseudo_collate)
    import mmengine.evaluator  # noqa: F401
    import mmengine.hooks  # noqa: F401
    import mmengine.optim  # noqa: F401  (registers torch's optimisers and schedulers)
    import mmengine.runner  # noqa: F401
    from mmengine import registry as R

    return {
        "model": R.MODELS,
        "teacher": R.MODELS,
        "student": R.MODELS,
        "loss": R.MODELS,
        "data_preprocessor": R.MODELS,
        "optim_wrapper": R.OPTIM_WRAPPERS,
        "optimizer": R.OPTIMIZERS,
        "param_scheduler": R.PARAM_SCHEDULERS,
        "dataset": R.DATASETS,
        "images": R.DATASETS,
        "transform": R.TRANSFORMS,
        "sampler": R.DATA_SAMPLERS,
        "collate_fn": R.FUNCTIONS,
        "train_cfg": R.LOOPS,
        "val_evaluator": R.METRICS,
        "hook": R.HOOKS,
        "vis_backend": R.VISBACKENDS,
        "visualizer": R.VISUALIZERS,
    }


# Arguments the Runner passes itself (default_args), never written in a recipe.
_INJECTED = {
    "self",
    "optimizer",
    "params",
    "dataset",
    "model",
    "runner",
    "dataloader",
    "epoch_length",
    "seed",
    "module",
    "batch",
}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _signature(obj: Any) -> dict[str, inspect.Parameter] | None:
    """The parameters of a class's ``__init__`` (the first in its MRO that names them, past
    pass-through ``(*args, **kwargs)`` overrides) or of a function."""
    for fn in [c.__init__ for c in inspect.getmro(obj)] if inspect.isclass(obj) else [obj]:
        try:
            params = dict(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            return None
        if any(
            p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"
            for n, p in params.items()
        ):
            return params
    return None


def _annotated(param: inspect.Parameter) -> set[str]:
    """The type names of a parameter's annotation (``int | None`` -> {"int", "None"})."""
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        return set()
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", None) or str(ann)
    for junk in ("typing.", "Optional[", "Union[", "]", "NoneType"):
        text = text.replace(junk, "None" if junk == "NoneType" else "")
    return {t.strip() for t in text.replace(",", "|").split("|") if t.strip()}


def _check_value(value: Any, param: inspect.Parameter) -> str | None:
    """What ``value`` should have been, judged by the parameter's annotation (int, float,
    bool) or else its default; None when fine."""
    if value is None:
        return None
    names, default = _annotated(param), param.default
    none = " or None" if "None" in names else ""
    if names and names <= {"int", "None"} and "int" in names:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"an integer{none}"
    if names and names <= {"int", "float", "None"} and "float" in names:
        return None if _is_num(value) else f"a number{none}"
    if names and names <= {"bool", "None"} and "bool" in names:
        return None if isinstance(value, bool) else "True or False"
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "True or False"
    if _is_num(default):  # an int default may take a float (SGD's momentum=0)
        return None if _is_num(value) else "a number"
    if isinstance(default, tuple) and default and all(_is_num(x) for x in default):
        ok = (
            isinstance(value, (list, tuple))
            and len(value) == len(default)
            and all(_is_num(x) for x in value)
        )
        return None if ok else f"{len(default)} numbers"
    return None


def _check_typed(
    where: str, cfg: dict, registry: Any, source: str, drop: Iterable[str] = ()
) -> None:
    """``cfg`` (a ``type=`` dict) against the signature of the class its registry names."""
    kind = cfg.get("type")
    obj = kind if callable(kind) else registry.get(kind) if isinstance(kind, str) else None
    if obj is None:
        # ssld-zoo's own names first: once imported, mmcv adds 100+ layers to the same registry
        known = sorted(
            registry.module_dict,
            key=lambda k: (
                not getattr(registry.module_dict[k], "__module__", "").startswith("ssld_zoo"),
                k,
            ),
        )[:40]
        raise ConfigError(
            f"{source}: {where}.type={kind!r} is not a registered "
            f"{registry.name} name; expected one of: {', '.join(known)}"
            f"{' ...' if len(registry.module_dict) > 40 else ''}"
        )
    params = _signature(obj)
    if params is None:
        return
    name = getattr(obj, "__name__", str(kind))
    given = {k: v for k, v in cfg.items() if k not in ("type", "_scope_", *drop)}
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    valid = [
        n
        for n, p in params.items()
        if n not in _INJECTED and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    bad = sorted(set(given) - set(params)) if not open_kwargs else []
    if bad:
        hint = (
            f" (a section inherited from a _base_ file merges into yours: write "
            f"{where}=dict(_delete_=True, type=..., ...) to replace it)"
            if where.endswith("optimizer")
            else ""
        )
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(f'{where}.{b}' for b in bad)} "
            f"for {name}; valid: {', '.join(valid)}{hint}"
        )
    for key, value in given.items():
        if key in params:
            want = _check_value(value, params[key])
            if want:
                raise ConfigError(f"{source}: {where}.{key}={value!r}: expected {want}")
    if registry.name in ("model", "dataset", "loop", "hook", "metric", "transform"):
        missing = [
            n for n in valid if params[n].default is inspect.Parameter.empty and n not in given
        ]
        if missing:
            raise ConfigError(f"{source}: {where}.{missing[0]} is required for {name}")


def _walk(where: str, value: Any, source: str, registries: dict, key: str) -> None:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _walk(f"{where}[{i}]", v, source, registries, key)
        return
    if not isinstance(value, dict):
        return
    registry = registries.get(key)
    if registry is not None and "type" in value:
        # a teacher/student spec also holds how it runs (popped before it is built)
        drop = _RUN_KEYS if key in ("teacher", "student") else ()
        _check_typed(where, value, registry, source, drop)
    for k, v in value.items():
        child = {"custom_hooks": "hook", "vis_backends": "vis_backend"}.get(k, k)
        if key == "default_hooks":
            child = "hook"
        _walk(f"{where}.{k}", v, source, registries, child)


def check_config(cfg: Any, source: str | None = None) -> Any:
    """Check a Runner config against the signatures of the classes it names, after importing
    the modules its ``custom_imports`` lists (which register them); returns it. Raises
    :class:`ConfigError` naming the bad key and what is expected."""
    source = source or getattr(cfg, "filename", None) or "config"
    imports = (cfg.get("custom_imports") or {}).get("imports") or []
    for module in [imports] if isinstance(imports, str) else imports:
        importlib.import_module(module)
    registries = _registries()
    plain = cfg.to_dict()
    for k in ("model", "train_dataloader", "train_cfg", "optim_wrapper"):
        if not isinstance(plain.get(k), dict):
            raise ConfigError(
                f"{source}: {k} is required (an mmengine Runner config; see "
                f"recipes/_base_/ and docs/distillation.md)"
            )
    for key, value in plain.items():
        _walk(key, value, source, registries, key)
    for loader in ("train_dataloader", "val_dataloader"):
        d = plain.get(loader)
        if isinstance(d, dict):
            for k, low in (("batch_size", 1), ("num_workers", 0)):
                v = d.get(k)
                if v is not None and not (
                    isinstance(v, int) and not isinstance(v, bool) and v >= low
                ):
                    raise ConfigError(f"{source}: {loader}.{k}={v!r}: expected an integer >= {low}")
    return cfg
