"""Throw-away user ids for the sandbox's runs as root: a block of uids claimed with a lock file (so no
other Sandbox, in this process or another, uses it), one uid a run, round robin, so a run never shares
a uid (nor its process count) with the still-exiting processes of the last."""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
import weakref
from pathlib import Path

UID_RANGE = (200_000, 2_000_000_000)  # throw-away uids are drawn from here (root only)
UID_BLOCK = 1 << 16  # uids one Sandbox uses, one per run, round robin


def world_executable(path: str) -> bool:
    """Whether any user may run this interpreter (every folder above it searchable by others)."""
    real = os.path.realpath(path)
    parts = Path(real).parents
    return all(os.stat(p).st_mode & 0o001 for p in parts) and bool(os.stat(real).st_mode & 0o005)


class UidBlock:
    """A free block of UID_BLOCK uids, held by a lock file naming this process until the block is
    collected (or the process exits: a dead holder's block is taken again). `next()`: the next run's uid."""

    def __init__(self, error: type[Exception] = RuntimeError):
        folder = Path(tempfile.gettempdir()) / "ttscale-uid-blocks"
        folder.mkdir(mode=0o700, exist_ok=True)
        blocks = (UID_RANGE[1] - UID_RANGE[0]) // UID_BLOCK
        for _ in range(100):
            index = secrets.randbelow(blocks)
            lock = folder / str(index)
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                try:
                    holder = int(lock.read_text() or 0)
                    os.kill(holder, 0)  # still alive: the block is taken
                    continue
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    lock.unlink(missing_ok=True)  # a dead holder's block: try it again next round
                    continue
                except PermissionError:
                    continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            self.low, self.high = UID_RANGE[0] + index * UID_BLOCK, UID_RANGE[0] + (index + 1) * UID_BLOCK
            self._runs = itertools.count()
            weakref.finalize(self, lock.unlink, True)
            return
        raise error("could not claim a block of throw-away uids")

    def next(self) -> int:
        return self.low + next(self._runs) % (self.high - self.low)
