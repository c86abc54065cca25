"""One walker for image folders: cycle-safe, each real file once, skips counted.

``os.walk(followlinks=True)`` follows a link back to a parent (``sub/cycle -> ..``) until the
path is too long, yielding every image once per level. :class:`FolderWalk` enters each real
folder once (keyed by device and inode, so a loop or a second link to the same folder is
walked once), yields each real file once (a link to an image already seen is a duplicate),
and skips hidden entries (``.name``) and files that are not images, counting each kind so a
caller can report them. The order is ``os.walk``'s top-down sorted order (a folder's files,
then its sub-folders), so lists scanned before this walker existed keep their order.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

__all__ = ["IMG_EXTENSIONS", "FolderWalk", "is_image", "walk_images"]

log = logging.getLogger("ssld_zoo.data")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")


def is_image(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive)."""
    return name.lower().endswith(IMG_EXTENSIONS)


@dataclass
class FolderWalk:
    """Walks folders, sharing what it has seen across calls (one root, or all classes of one).

    Counters after the walks: ``hidden`` (entries starting with a dot), ``not_images`` (files
    without an image extension), ``duplicates`` (links to a file already listed) and
    ``revisits`` (links to a folder already entered: loops and aliases).
    """

    hidden: int = 0
    not_images: int = 0
    duplicates: int = 0
    revisits: int = 0
    _folders: set = field(default_factory=set, repr=False)
    _files: set = field(default_factory=set, repr=False)

    def images(self, folder: str | os.PathLike) -> list[str]:
        """The image paths under ``folder``, spelled under ``folder`` (links not resolved)."""
        out: list[str] = []
        self._walk(os.fspath(folder), out)
        return out

    def _walk(self, folder: str, out: list[str]) -> None:
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in self._folders:
                self.revisits += 1
                return
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            log.warning("skipping unreadable folder %s: %s", folder, e.strerror or e)
            return
        self._folders.add(key)
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                self.hidden += 1
            elif _is_dir(entry):
                subfolders.append(entry.path)
            elif not is_image(entry.name):
                self.not_images += 1
            else:
                file_key = _file_key(entry, st.st_dev)
                if file_key in self._files:
                    self.duplicates += 1
                else:
                    self._files.add(file_key)
                    out.append(entry.path)
        for sub in subfolders:
            self._walk(sub, out)

    def report(self, what: str) -> None:
        """Log what was skipped under ``what`` (a warning for loops and duplicates, which
        hint at a mistake; hidden and other files are routine)."""
        if self.summary():
            level = logging.WARNING if self.duplicates or self.revisits else logging.INFO
            log.log(level, "%s: skipped %s", what, self.summary())

    def summary(self) -> str:
        """What was skipped, in words (empty when nothing was)."""
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.hidden, "hidden entries"),
                (self.not_images, "files that are not images"),
                (self.duplicates, "links to images already listed"),
                (self.revisits, "links to folders already walked (loops or aliases)"),
            )
            if n
        ]
        return ", ".join(parts)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links: a link to a folder is walked (once)
    except OSError:
        return False


def _file_key(entry: os.DirEntry, folder_dev: int) -> tuple:
    """A file's identity: a regular file's inode comes free with the listing; a link is
    stat'ed to find its target (a broken link keeps its own path: reading it reports it)."""
    if not entry.is_symlink():
        return folder_dev, entry.inode()
    try:
        st = entry.stat()
    except OSError:
        return ("broken", entry.path)
    return st.st_dev, st.st_ino


def walk_images(folder: str | os.PathLike, role: str = "folder") -> list[str]:
    """The images under ``folder`` (see :class:`FolderWalk`); what was skipped is logged,
    naming ``role`` and the folder."""
    walk = FolderWalk()
    paths = walk.images(folder)
    walk.report(f"{role} {os.fspath(folder)}")
    return paths
