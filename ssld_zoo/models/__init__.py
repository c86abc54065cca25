"""One file per architecture family; importing this package registers them all.

Every module here not starting with ``_`` is a family file and is imported, so adding a
family is adding a file.
"""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
