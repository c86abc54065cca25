"""Checkpoints that survive a kill at any moment and load under torch's ``weights_only=True``.

**Crash safety.** mmengine 0.10.7 writes a checkpoint in place, deletes the oldest one *before*
writing the next (with ``max_keep_ckpts=1`` a kill in between leaves none), and rewrites
``last_checkpoint`` (an absolute path) in place. Here instead:

* :class:`AtomicLocalBackend` (mmengine file backend ``AtomicLocalBackend``) writes every file
  to a temp file beside it, fsyncs it, renames it into place and fsyncs the folder: a file under
  its final name is always complete.
* :class:`AtomicCheckpointHook` (mmengine's CheckpointHook otherwise)
  removes a superseded checkpoint only after the new one and ``last_checkpoint`` are written,
  stores ``last_checkpoint`` relative to the work folder (a copied folder resumes from its own
  files), and on resume removes the file a killed run had not yet removed.
* :func:`find_resume_checkpoint` reads ``last_checkpoint`` (relative, or mmengine's absolute
  form, taken by its file name inside the work folder) and falls back to the newest complete
  ``epoch_N.pth`` when it is empty or names a missing file.
* :func:`read_checkpoint` loads a checkpoint for resuming, or refuses it in one line naming the
  file and why (not a torch file, truncated, objects other than tensors, not a training
  checkpoint).

**weights_only.** mmengine pickles its message hub (``HistoryBuffer`` objects, whose state holds
numpy arrays and bound methods reached through ``getattr``) and numpy scalars into every
checkpoint, then loads with a plain ``torch.load``: since torch 2.6 that load is refused.
Allow-listing ``getattr`` would open the unpickler to arbitrary code, so instead
:class:`SafeCheckpointHook` rewrites those objects into tensors, numbers and dicts just before a
checkpoint is written and rebuilds them just after one is read. The project's checkpoints
therefore load with ``weights_only=True`` and nothing is allow-listed globally.
:func:`mmengine_safe_globals` covers the remaining numpy types for the duration of a load only
(checkpoints written by plain mmengine are refused).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

__all__ = [
    "SafeCheckpointHook",
    "to_safe",
    "from_safe",
    "mmengine_safe_globals",
    "AtomicLocalBackend",
    "AtomicCheckpointHook",
    "CheckpointError",
    "LAST_CHECKPOINT",
    "atomic_write_bytes",
    "write_last_checkpoint",
    "find_resume_checkpoint",
    "read_checkpoint",
]

log = logging.getLogger("ssld_zoo.distill")

_HB, _ND = "__ssld_history_buffer__", "__ssld_ndarray__"
LAST_CHECKPOINT = "last_checkpoint"
_TMP_SUFFIX = ".ssld-tmp"
_STALE_KEY = "ssld_superseded_ckpt"  # message hub: the checkpoint the newest one replaced
_EPOCH_CKPT = re.compile(r"^epoch_([0-9]+)\.pth$")


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from; the message names the file and why."""


def _fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either its old content or all of ``data``,
    whenever the process dies: temp file beside it, fsync, rename, fsync of the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (:func:`atomic_write_bytes`) and
    whose removals can be deferred until a new file is complete (:meth:`deferred_removals`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[str] | None = None

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))

    def remove(self, filepath: str | Path) -> None:
        if self._deferred is not None:
            self._deferred.append(str(filepath))
        else:
            super().remove(filepath)

    @contextlib.contextmanager
    def deferred_removals(self) -> Iterator[None]:
        """Removals asked for inside the block happen when it ends without an error (then the
        files that replace them are complete); after an error nothing is removed."""
        self._deferred = pending = []
        try:
            yield
        finally:
            self._deferred = None
        for f in pending:
            if os.path.isfile(f):
                super().remove(f)


register_backend("AtomicLocalBackend", AtomicLocalBackend)


def write_last_checkpoint(work_dir: str | os.PathLike, checkpoint: str | os.PathLike) -> None:
    """Point ``<work_dir>/last_checkpoint`` at ``checkpoint`` atomically, relative to the work
    folder when it lies inside it (so the folder can be moved or copied)."""
    work_dir, checkpoint = Path(work_dir), Path(checkpoint)
    try:
        text = checkpoint.resolve().relative_to(work_dir.resolve()).as_posix()
    except ValueError:
        text = str(checkpoint)
    atomic_write_bytes(work_dir / LAST_CHECKPOINT, (text + "\n").encode("utf-8", "surrogateescape"))


def _complete(path: Path) -> bool:
    """A torch checkpoint file that was written to the end (a zip with its central directory)."""
    return path.is_file() and zipfile.is_zipfile(path)


def find_resume_checkpoint(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``--resume`` continues from in ``work_dir``, or None when there is none.

    ``last_checkpoint`` holds a path relative to the work folder, or (written by plain mmengine
    or an older ssld-zoo) an absolute one, which is taken by its file name inside this work
    folder: a copied folder never resumes from, or depends on, the folder it was copied from.
    When ``last_checkpoint`` is missing, empty, or names a missing or incomplete file, the
    newest complete ``epoch_N.pth`` is used (with a warning)."""
    work_dir = Path(work_dir)
    last = work_dir / LAST_CHECKPOINT
    named = None
    if last.is_file():
        text = last.read_bytes().decode("utf-8", "surrogateescape").strip()
        if text:
            p = Path(text)
            named = work_dir / (p.name if p.is_absolute() else p)
            if _complete(named):
                return named
    epochs = sorted(
        (int(m.group(1)), f)
        for f in work_dir.glob("epoch_*.pth")
        if (m := _EPOCH_CKPT.match(f.name)) and _complete(f)
    )
    if not epochs:
        return None
    why = (
        f"names {named}, which is missing or incomplete"
        if named is not None
        else "is missing or empty"
    )
    log.warning("%s %s: resuming from %s, the newest complete checkpoint", last, why, epochs[-1][1])
    return epochs[-1][1]


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """A training checkpoint of ``ssld-zoo distill`` (``weights_only=True``), or
    :class:`CheckpointError` (FileNotFoundError for a missing file) naming the file and why."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a checkpoint (not a torch zip file: truncated, or "
            f"another format); resume from an epoch_N.pth of a work folder"
        )
    try:
        with mmengine_safe_globals():
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([^ ]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: not a checkpoint of ssld-zoo distill: it holds Python "
            f"objects{what} beyond tensors and plain values, and is not loaded "
            f"(loading them could run code)"
        ) from None
    except (RuntimeError, EOFError, KeyError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    missing = [
        k
        for k in ("meta", "state_dict", "message_hub")
        if not isinstance(checkpoint, dict) or k not in checkpoint
    ]
    if not missing:
        missing = [
            f"meta.{k}"
            for k in ("epoch", "iter")
            if not isinstance(checkpoint["meta"], dict) or k not in checkpoint["meta"]
        ]
    if missing:
        raise CheckpointError(
            f"{path}: not a training checkpoint of ssld-zoo distill (no "
            f"{', '.join(missing)}); a weights file is not resumable: resume "
            f"from an epoch_N.pth of a work folder"
        )
    return checkpoint


def to_safe(obj: Any) -> Any:
    """``obj`` with HistoryBuffers, numpy arrays and numpy scalars replaced by weights_only-
    loadable stand-ins (tagged dicts of tensors, Python numbers)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if isinstance(obj, HistoryBuffer):
        log, count = obj.data
        return {
            _HB: True,
            "log": torch.from_numpy(np.array(log, dtype=np.float64)),
            "count": torch.from_numpy(np.array(count, dtype=np.float64)),
            "max_length": int(obj.max_length),
        }
    if isinstance(obj, np.ndarray):
        return {_ND: torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return (
            type(obj)((k, to_safe(v)) for k, v in obj.items())
            if type(obj) is not dict
            else {k: to_safe(v) for k, v in obj.items()}
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    return obj


def from_safe(obj: Any) -> Any:
    """Inverse of :func:`to_safe`."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if isinstance(obj, dict):
        if obj.get(_HB) is True:
            return HistoryBuffer(obj["log"].numpy(), obj["count"].numpy(), obj["max_length"])
        if _ND in obj and len(obj) == 1:
            return obj[_ND].numpy()
        return (
            {k: from_safe(v) for k, v in obj.items()}
            if type(obj) is dict
            else type(obj)((k, from_safe(v)) for k, v in obj.items())
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_safe(v) for v in obj)
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Make every checkpoint weights_only-loadable (runs after all other hooks have added to it)."""

    priority = "LOWEST"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ("state_dict", "optimizer"):
                checkpoint[key] = to_safe(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ("state_dict", "optimizer"):
                checkpoint[key] = from_safe(checkpoint[key])


@contextlib.contextmanager
def mmengine_safe_globals() -> Iterator[None]:
    """Allow, for the duration of the block only, the plain numpy types (arrays, dtypes) that
    may still sit in a checkpoint's optimizer or scheduler state; never ``getattr`` or code."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    allowed = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    with torch.serialization.safe_globals(allowed):
        yield


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook, made safe against a kill at any moment (see the module doc):
    atomic writes through :class:`AtomicLocalBackend`, superseded checkpoints removed only once
    the new one is complete, ``last_checkpoint`` relative to the work folder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("backend_args", {"backend": "AtomicLocalBackend"})
        super().__init__(*args, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        hub = runner.message_hub
        # A resumed folder may have been copied or moved: paths recorded by the run that wrote
        # the checkpoint are taken by their file name in this folder.
        indicators = getattr(self, "key_indicators", ())  # set only with save_best
        for key in ("best_ckpt", "last_ckpt", *(f"best_ckpt_{k}" for k in indicators)):
            old = hub.runtime_info.get(key)
            if old:
                hub.update_info(key, os.path.join(self.out_dir, os.path.basename(old)))
        if self.save_best is not None:
            if len(self.key_indicators) == 1:
                self.best_ckpt_path = hub.runtime_info.get("best_ckpt")
            else:
                for k in self.key_indicators:
                    self.best_ckpt_path_dict[k] = hub.runtime_info.get(f"best_ckpt_{k}")
        if not is_main_process():
            return
        for tmp in Path(self.out_dir).glob(f".*{_TMP_SUFFIX}"):  # left by a killed write
            tmp.unlink(missing_ok=True)
        stale = hub.runtime_info.get(_STALE_KEY)
        keep = {self.filename_tmpl.format(s) for s in getattr(self, "keep_ckpt_ids", ())}
        if stale and os.path.basename(stale) not in keep:
            self._remove(os.path.join(self.out_dir, os.path.basename(stale)))

    # The three private overrides below: mmengine 0.10.7 has no public hook between writing a
    # checkpoint and removing the one it supersedes, which is the order a kill must not break.
    def _remove(self, path: str) -> None:
        if os.path.isfile(path):
            os.remove(path)
        elif os.path.isdir(path):  # checkpoints saved by deepspeed are directories
            shutil.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        # mmengine's, with the removal of the superseded checkpoint moved after the save and
        # last_checkpoint written atomically and relative to the work folder.
        stale = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        if stale is not None:
            stale_path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(stale))
            runner.message_hub.update_info(_STALE_KEY, stale_path)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if not is_main_process():
            return
        write_last_checkpoint(runner.work_dir, self.last_ckpt)
        if stale is not None:
            self._remove(stale_path)

    def _save_best_checkpoint(self, runner, metrics: dict) -> None:
        # mmengine removes the previous best before writing the new one: defer that removal.
        if isinstance(self.file_backend, AtomicLocalBackend):
            with self.file_backend.deferred_removals():
                super()._save_best_checkpoint(runner, metrics)
        else:
            super()._save_best_checkpoint(runner, metrics)
