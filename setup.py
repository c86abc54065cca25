"""Build step only (the metadata is in pyproject.toml): put copies of the repository's
``recipes/`` and ``downstream/{_base_,mmdet,mmseg}`` configs inside the built package, so that a
pip-installed ssld-zoo has them too (see ssld_zoo/shipped.py)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# source folder in the repository -> folder inside the installed package
# (downstream/_base_ holds what the mmdet and mmseg configs share: they inherit it by a relative
# path, so it sits next to them in the package too.)
SHIPPED = {
    "recipes": "recipes",
    "downstream/_base_": "downstream/_base_",
    "downstream/mmdet": "downstream/mmdet",
    "downstream/mmseg": "downstream/mmseg",
}


class BuildWithConfigs(build_py):
    def run(self) -> None:
        if not self.editable_mode:
            # Start from an empty package folder: a module deleted from the tree must not
            # ship from an earlier build's leftovers in build/lib.
            shutil.rmtree(Path(self.build_lib) / "ssld_zoo", ignore_errors=True)
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders
            return
        for src, dst in SHIPPED.items():
            target = Path(self.build_lib) / "ssld_zoo" / dst
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(
                ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildWithConfigs})
