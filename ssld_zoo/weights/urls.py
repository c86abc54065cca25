"""What a weights URL means: its cache file name, its kind, and its place on a mirror.

No imports from the rest of ssld_zoo, so that the registry (a card's ``file_name``) and the
download code can both use it without importing each other.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

__all__ = ["file_name_for", "is_url", "is_google_drive", "mirror_location", "published_prefix"]

_GDRIVE_HOSTS = ("drive.google.com", "drive.usercontent.google.com", "docs.google.com")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]*")
# torch.hub's convention: a file named ``name-<first 8+ hex digits of its sha256>.ext``
# (torch.hub.HASH_REGEX, checked by ``download_url_to_file(check_hash=True)``). At least 8
# digits here, so that a name such as ``Model-bad.pth`` is not read as a hash.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")


def is_google_drive(url: str) -> bool:
    """Whether ``url`` is a Google Drive link (fetched through gdown)."""
    return (urllib.parse.urlsplit(url).hostname or "") in _GDRIVE_HOSTS


def is_url(text: str) -> bool:
    """Whether ``text`` is an http(s) URL (a Google Drive link included) rather than a path."""
    return urllib.parse.urlsplit(text).scheme.lower() in ("http", "https")


def file_name_for(url: str) -> str:
    """The cache file name of a URL: its basename, or for Google Drive its ``#fragment``.

    Google Drive links (``https://drive.google.com/uc?id=XYZ``) carry no file name, so the
    zoo's cards name the file in the fragment: ``...uc?id=XYZ#ResNet50_vd_ssld.pdparams``.
    Raises ValueError for another scheme or a name that could leave the cache folder.
    """
    parts = urllib.parse.urlsplit(url)
    if is_google_drive(url):
        name = urllib.parse.unquote(parts.fragment)
        if not name:
            raise ValueError(
                f"{url}: a Google Drive URL must name its file in the fragment, "
                "e.g. https://drive.google.com/uc?id=FILE_ID#Model.pdparams"
            )
    else:
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"{url}: unsupported URL scheme {parts.scheme!r}; expected "
                "http(s) or a Google Drive link"
            )
        name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    # The name becomes a path in the cache: refuse anything that could leave it.
    if not _SAFE_NAME.fullmatch(name) or name.endswith((".part", ".json", ".lock")):
        raise ValueError(
            f"{url}: cannot derive a safe cache file name from it (got {name!r}); "
            "expected letters, digits and . _ + - only"
        )
    return name


def published_prefix(name: str) -> str | None:
    """The sha256 prefix a file name publishes (torch.hub's ``-<hex>.`` convention), if any."""
    m = _HASH_IN_NAME.search(name)
    return m.group(1) if m else None


def mirror_location(mirror: str, name: str) -> str | Path:
    """Where file ``name`` is on ``mirror``: a URL under an http(s) base, or a path in a local
    folder (a plain path or a ``file://`` URL)."""
    if is_url(mirror):
        return mirror.rstrip("/") + "/" + urllib.parse.quote(name)
    parts = urllib.parse.urlsplit(mirror)
    folder = urllib.parse.unquote(parts.path) if parts.scheme == "file" else mirror
    return Path(os.path.expanduser(folder)) / name
