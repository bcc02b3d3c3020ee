"""CPU seconds used by a process and everything it started, read from /proc.

The sandbox watches each run's two process trees with this, so the CPU limit can grow with the
tests' proxied calls the way the wall-clock limit does (an RLIMIT_CPU is fixed when the process starts,
and counts one process, not the tree a program forks)."""

from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()  # after "pid (comm) ": the comm may hold spaces and ")"


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
        except (OSError, ValueError):
            continue
    return found


def tree_cpu_seconds(pid: int, limit: int = 4096) -> float | None:
    """User + system CPU seconds of `pid` and its descendants, living or exited (a reaped child's time is
    in its parent's cutime / cstime; an unreaped one is still listed). None where `pid` is gone."""
    total, seen, stack = 0, set(), [pid]
    while stack and len(seen) < limit:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        fields = _stat(current)
        if fields is None:
            if current == pid:
                return None
            continue
        # fields[0] is the state (stat's 3rd field): utime, stime, cutime, cstime are stat's 14th-17th
        total += sum(int(value) for value in fields[11:15])
        stack += _children(current)
    return total / TICKS


def available() -> bool:
    """Whether this kernel lists a process's children (CONFIG_PROC_CHILDREN) and /proc shows our own stat."""
    pid = os.getpid()
    return os.path.exists(f"/proc/{pid}/task/{pid}/children") and tree_cpu_seconds(pid) is not None
