"""Processes as the kernel lists them (/proc): what a ttscale process marked, its descendants, which live."""

from __future__ import annotations

import os
import time


def marked_by(pid: int) -> list[int]:
    """Processes whose environment carries the watchdog token of ttscale process `pid`."""
    needle = f"TTSCALE_RUN={pid}-".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if any(item.startswith(needle) for item in handle.read().split(b"\0")):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def tree(pid: int) -> list[int]:
    """Every descendant of `pid` by the process tree (/proc/*/stat parent links), not by any mark."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        here = todo.pop()
        for child, parent in parents.items():
            if parent == here and child not in found:
                found.append(child)
                todo.append(child)
    return found


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                if "\nState:\tZ" not in handle.read():
                    out.append(pid)
        except OSError:
            continue
    return out


def wait_gone(pids: list[int], seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive(pids):
        time.sleep(0.2)
    return alive(pids)
