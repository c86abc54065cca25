"""``ssld-zoo distill`` that stops dead inside a checkpoint write, for the SIGKILL tests.

    python tests/distill/_kill_points.py STAGE N READY_FILE distill ARGS...

The run stops at the N-th (1-based) time it reaches STAGE, creates READY_FILE and sleeps; the
test then kills it with SIGKILL. It runs the real write path of
:mod:`ssld_zoo.engine.checkpoint`; only its ``os.fsync`` and ``atomic_write_bytes`` are wrapped
to find the moment (and, for a torn write, to cut the temp file to half its bytes first):

* ``ckpt_torn``: the temp file of an ``epoch_N.pth`` holds half its bytes (killed mid-write)
* ``ckpt_renamed``: ``epoch_N.pth`` renamed into place, ``last_checkpoint`` not yet updated
* ``last_torn``: the temp file of ``last_checkpoint`` holds half its bytes
* ``last_written``: ``last_checkpoint`` updated, the superseded checkpoint not yet removed
* ``none``: never stops
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import ssld_zoo.engine.checkpoint as ck

STAGES = ("ckpt_torn", "ckpt_renamed", "last_torn", "last_written", "none")


def _kind(path: Path | None) -> str | None:
    if path is None:
        return None
    if path.name == ck.LAST_CHECKPOINT:
        return "last"
    return "ckpt" if path.name.startswith("epoch_") and path.suffix == ".pth" else None


def install(stage: str, n: int, ready: Path) -> None:
    """Wrap the checkpoint module so that the run stops at the ``n``-th ``stage``."""
    if stage not in STAGES:
        raise SystemExit(f"stage {stage!r}: expected one of {STAGES}")
    real_os, real_write = ck.os, ck.atomic_write_bytes
    state = {"seen": 0, "path": None}

    def reached() -> bool:
        state["seen"] += 1
        return state["seen"] == n

    def stop() -> None:
        ready.write_text(stage)
        time.sleep(3600)

    class _Os:
        """``os`` for checkpoint.py: its fsync of a temp file can tear it first."""

        def __getattr__(self, name: str):
            return getattr(real_os, name)

        @staticmethod
        def fsync(fd: int) -> None:
            if (
                stat.S_ISREG(real_os.fstat(fd).st_mode)
                and stage == f"{_kind(state['path'])}_torn"
                and reached()
            ):
                real_os.ftruncate(fd, real_os.fstat(fd).st_size // 2)
                stop()
            real_os.fsync(fd)

    def atomic_write_bytes(path, data: bytes) -> None:
        state["path"] = Path(path)
        real_write(path, data)
        kind = _kind(state["path"])
        state["path"] = None
        if (kind, stage) in (("ckpt", "ckpt_renamed"), ("last", "last_written")) and reached():
            stop()

    ck.os = _Os()
    ck.atomic_write_bytes = atomic_write_bytes


if __name__ == "__main__":
    install(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ssld_zoo.cli.main import main

    sys.exit(main(sys.argv[4:]))
