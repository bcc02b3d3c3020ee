"""Whole-tree limits for one sandboxed run: a cgroup with a memory and a process-count limit, and the CPU
its two processes share."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from pathlib import Path


class Cgroups:
    """A fresh cgroup per run (memory and process count for the program's whole tree, and a CPU weight
    of its own so a run that starts many processes gets no more of the machine than one that does not),
    where the machine lets us make one: cgroup v2 with the memory and pids controllers (and cpu where
    enabled), or v1 memory + pids (+ cpu). The tests' process of each run gets a cgroup of its own too
    (TESTS_EXTRA_MB over the program's memory limit: it decodes what the program sends).

    Per run, not per slot: bubblewrap's processes are reaped by the system's init, sometimes a second
    or more after the run, and until then they still count against pids.max. A run's cgroup is removed
    once it is empty (retried at later runs and at close)."""

    TESTS_EXTRA_MB = 128
    CPU_SHARES = 1024  # v1 cpu.shares (the default weight); v2 cpu.weight 100

    def __init__(self, memory_mb: int, processes: int):
        self.memory_mb, self.processes = memory_mb, processes
        self.problem: str | None = None
        self.prefix = f"ttscale-{os.getpid()}-{secrets.token_hex(4)}"
        self.cpu = False  # whether each run gets a CPU weight of its own
        self.roots = self._roots()
        self.pending: list[str] = []  # cgroups of finished runs, removed when their last process is reaped
        self._lock = threading.Lock()
        if not self.roots:
            self.problem = "no writable cgroup with memory and pids controllers"
            return
        try:  # one trial run's worth, to refuse early rather than per program
            self.release(self.create("probe"))
        except OSError as exc:
            self.problem = f"could not set up a cgroup: {exc}"
            self.roots = []

    @staticmethod
    def _write(path: str, name: str, value: str, optional: bool = False) -> None:
        try:
            with open(os.path.join(path, name), "w") as handle:
                handle.write(value)
        except OSError:
            if not optional:
                raise

    def _roots(self) -> list[tuple[str, str]]:
        base = "/sys/fs/cgroup"
        try:
            own = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return []
        v2 = next((line.split(":", 2)[2] for line in own if line.startswith("0::")), None)
        if v2 is not None and os.path.exists(os.path.join(base, "cgroup.controllers")):
            root = os.path.join(base, v2.lstrip("/"))
            try:
                controllers = Path(root, "cgroup.subtree_control").read_text().split()
            except OSError:
                controllers = []
            if {"memory", "pids"} <= set(controllers) and os.access(root, os.W_OK):
                self.cpu = "cpu" in controllers
                return [("v2", root)]
        found = []
        for kind in ("memory", "pids", "cpu"):
            mine = next((line.split(":", 2)[2] for line in own if kind in line.split(":")[1].split(",")), None)
            root = os.path.join(base, kind, (mine or "/").lstrip("/"))
            if mine is None or not os.access(root, os.W_OK):
                if kind == "cpu":  # optional: fairness then rests on the kernel's scheduler alone
                    continue
                return []
            found.append((kind, root))
        self.cpu = any(kind == "cpu" for kind, _ in found)
        return found

    def create(self, run: str, tests: bool = False, memory_mb: int | None = None, processes: int | None = None) -> list[str]:
        """A run's cgroups (the program's, or with tests=True its tests' process's), sized from the run's
        own limits (`memory_mb`, `processes`; default: the sandbox's)."""
        made = []
        memory_mb = (self.memory_mb if memory_mb is None else memory_mb) + (self.TESTS_EXTRA_MB if tests else 0)
        processes = self.processes if processes is None else processes
        try:
            for kind, root in self.roots:
                path = os.path.join(root, f"{self.prefix}-{run}")
                os.mkdir(path)
                made.append(path)
                if kind == "cpu":
                    self._write(path, "cpu.shares", str(self.CPU_SHARES))
                if kind == "v2" and self.cpu:
                    self._write(path, "cpu.weight", "100", optional=True)
                if kind in ("v2", "memory"):
                    limit = str(memory_mb << 20)
                    self._write(path, "memory.max" if kind == "v2" else "memory.limit_in_bytes", limit)
                    if kind == "v2":
                        self._write(path, "memory.swap.max", "0", optional=True)
                if kind in ("v2", "pids"):
                    # the program's own processes, plus bubblewrap's, setpriv's and the shell's
                    self._write(path, "pids.max", str(processes + 8))
        except OSError:
            self.release(made)
            raise
        return made

    @staticmethod
    def enter_command(paths: list[str]) -> list[str]:
        """A prefix that moves the command into the run's cgroups before it runs (children inherit)."""
        procs = " ".join(f"'{os.path.join(p, 'cgroup.procs')}'" for p in paths)
        return ["/bin/sh", "-c", f'for f in {procs}; do echo $$ > "$f" || exit 125; done; exec "$@"', "sh"]

    @staticmethod
    def enter(paths: list[str], pid: int) -> None:
        """Move a running process into the run's cgroups (its later children follow)."""
        for path in paths:
            with open(os.path.join(path, "cgroup.procs"), "w") as handle:
                handle.write(str(pid))

    @staticmethod
    def kill(paths: list[str], wait: float = 2.0) -> None:
        """SIGKILL whatever is left in the run's cgroups, until none is listed."""
        deadline = time.monotonic() + wait
        while True:
            left = []
            for path in paths:
                try:
                    left += Path(path, "cgroup.procs").read_text().split()
                except OSError:
                    continue
            if not left or time.monotonic() > deadline:
                return
            for pid in left:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            time.sleep(0.005)

    @staticmethod
    def oom_count(paths: list[str]) -> int:
        total = 0
        for path in paths:
            for name, key in (("memory.events", "oom_kill"), ("memory.failcnt", None)):
                try:
                    text = Path(path, name).read_text()
                except OSError:
                    continue
                if key is None:
                    total += int(text.strip() or 0)
                else:
                    total += sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(key + " "))
        return total

    def release(self, paths: list[str]) -> None:
        """Remove finished runs' cgroups; those still holding an unreaped process wait for a later try."""
        with self._lock:
            still = []
            for path in [*self.pending, *paths]:
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    still.append(path)
            self.pending = still

    def close(self, wait: float = 5.0) -> None:
        deadline = time.monotonic() + wait
        self.release([])
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.1)
            self.release([])


@contextlib.contextmanager
def on_cpu(cpu: int | None):
    """Processes started in this block (by this thread) run on `cpu` only. A run's two processes take
    turns (a proxied call is a round trip through a pipe); on one CPU a turn needs no cross-CPU
    wake-up, which costs more than the call itself on a virtual machine. None: no change."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)  # this thread's (children inherit the forking thread's mask)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:  # a CPU taken away since: run where allowed
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
