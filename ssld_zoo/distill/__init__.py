"""Label-free SSLD distillation on the shared engine: the :class:`Distiller` model, its losses,
the fast online teacher, teacher caches, mining, recipes and the run.

Importing this package registers every class a recipe names (``custom_imports`` of
``recipes/_base_/default_runtime.py``): the engine's (:mod:`ssld_zoo.engine`), the data pieces
(:mod:`ssld_zoo.data.images`) and distillation's own.
"""

import ssld_zoo.engine  # noqa: F401  (registers the runner, loop, hooks, metric, models)
from ssld_zoo.distill.cache import CachedViewDataset, collate_cached
from ssld_zoo.distill.distiller import Distiller, NonFiniteLossError, build_teacher_model
from ssld_zoo.distill.hooks import TeacherOnceHook
from ssld_zoo.distill.losses import LOSSES, build_loss, register_loss
from ssld_zoo.distill.teacher import OnlineTeacher

__all__ = [
    "Distiller",
    "NonFiniteLossError",
    "build_teacher_model",
    "TeacherOnceHook",
    "LOSSES",
    "build_loss",
    "register_loss",
    "OnlineTeacher",
    "CachedViewDataset",
    "collate_cached",
]
