"""Teacher caches: the teacher's outputs on stored, replayable views, computed once.

``ssld-zoo label RECIPE --views N --topk K`` builds one (:mod:`.build`); a recipe with
``model.teacher_cache=DIR`` and a ``CachedViewDataset`` of it trains from it without running
the teacher (:mod:`.dataset`);
:mod:`.format` holds the files' layout and the checks that a cache fits a recipe.
"""

from ssld_zoo.distill.cache.build import BuildResult, build_teacher_cache, teacher_fingerprint
from ssld_zoo.distill.cache.dataset import CachedViewDataset, collate_cached
from ssld_zoo.distill.cache.format import (
    KINDS,
    CacheError,
    CacheMismatchError,
    ImageChangedError,
    TeacherCache,
    dense_log_probs,
)

__all__ = [
    "build_teacher_cache",
    "BuildResult",
    "teacher_fingerprint",
    "CachedViewDataset",
    "collate_cached",
    "TeacherCache",
    "CacheError",
    "CacheMismatchError",
    "ImageChangedError",
    "dense_log_probs",
    "KINDS",
]
