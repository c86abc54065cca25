"""The exceptions of the weights path, in one place.

Two families: a file that is not acceptable weights (``WeightsFileError``, a ValueError) and a
file that could not be obtained (``DownloadError``, a RuntimeError). Every message is one line
naming the file or URL, the key or value at fault, and what was expected.
"""

from __future__ import annotations

__all__ = [
    "WeightsFileError",
    "StateDictMismatch",
    "WeightValueError",
    "PdparamsError",
    "UnsafePickleError",
    "DownloadError",
    "HTTPStatusError",
    "ChecksumError",
    "OfflineError",
    "DeadlineError",
    "NotWeightsError",
    "CacheRepairWarning",
    "DtypeCastWarning",
]


class WeightsFileError(ValueError):
    """A file is not acceptable weights: unreadable, wrong types, or not fitting the model."""


class StateDictMismatch(WeightsFileError):
    """Keys, shapes or dtypes of a weights file do not fit the architecture."""


class WeightValueError(WeightsFileError):
    """Tensor values no trained weights have: NaN/Inf, negative BatchNorm variances."""


class PdparamsError(WeightsFileError):
    """The file is not a readable .pdparams."""


class UnsafePickleError(PdparamsError):
    """The pickle names a callable outside the allow-list (it could run code)."""


class DownloadError(RuntimeError):
    """A weight file could not be obtained."""


class HTTPStatusError(DownloadError):
    """The server answered with an error status that retrying will not fix (404, 403, ...)."""

    def __init__(self, url: str, status: int, reason: str = ""):
        self.url, self.status = url, status
        super().__init__(f"{url}: HTTP {status} {reason}".rstrip())


class ChecksumError(DownloadError):
    """A downloaded or cached file does not have the expected sha256."""


class OfflineError(DownloadError):
    """``SSLD_ZOO_OFFLINE`` is set and the file is not in the cache."""


class DeadlineError(DownloadError):
    """The download did not finish within ``SSLD_ZOO_DOWNLOAD_DEADLINE``."""


class NotWeightsError(DownloadError):
    """The server sent something other than the weights (a web page, an empty or broken
    body, a file that does not fit the architecture); nothing of it was kept."""


class DtypeCastWarning(UserWarning):
    """A weights file stored in fp16/bf16 was cast to the architecture's dtype."""


class CacheRepairWarning(UserWarning):
    """A damaged cache entry was found, moved to quarantine, and is being rebuilt."""
