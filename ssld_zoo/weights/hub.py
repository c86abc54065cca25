"""Former home of the download manager, kept only for the imports that still name it.

The weights path now lives in small modules: :mod:`.source` (the seam: ``load_weights``),
:mod:`.download` (cache protocol), :mod:`.fetch` (transport), :mod:`.cache` (layout, listing,
clearing), :mod:`.trust` (recorded hashes), :mod:`.fileops` (atomic writes, hashes). Import
from those; this module goes once nothing imports it.
"""
from ssld_zoo.weights.cache import cached_path, converted_path  # noqa: F401
from ssld_zoo.weights.fileops import atomic_write, sha256_of  # noqa: F401
from ssld_zoo.weights.settings import cache_dir  # noqa: F401
from ssld_zoo.weights.trust import recorded_sha256  # noqa: F401

__all__ = ["atomic_write", "sha256_of", "recorded_sha256", "cache_dir", "converted_path",
           "cached_path"]
