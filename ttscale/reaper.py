"""Every process ttscale starts ends with it, however it ends (SIGKILL and the OOM killer included).

`guard()` starts a watchdog in a session of its own (so a signal to ttscale's process group does not
reach it) that knows the run's processes two ways:

- by process tree: while ttscale lives, the watchdog looks at its descendants every TRACK_EVERY
  seconds and remembers each (pid and start time, so a reused pid is never taken for one). This is
  what finds vLLM's engine core: it is forked without exec, and a forked child's /proc/PID/environ
  shows the environment its process image *started* with, without a mark set afterwards;
- by a mark: TTSCALE_RUN=<token> in the environment, which every process started by exec inherits
  (the math grader's workers, servers started by `ttscale.backends.launch`, a process that left the
  tree by a double fork before the watchdog looked).

When ttscale ends in any way, the watchdog is re-parented; it then sends SIGTERM to every remembered
process still alive, every marked one and all their descendants, and SIGKILL `grace` seconds later to
those still there. (A process forked and daemonised within one look, without exec, escapes both.) (Its parent, not a pipe:
a pipe's write end would be inherited by processes forked without exec, and never close.) A process
started with another ttscale's token (a sweep job run by a launcher) starts a watchdog of its own, so
the processes it starts end with it. Linux only (it reads /proc); elsewhere `guard` does nothing and
says so.

Why vLLM's own mechanism does not act: its workers watch their parent, the engine core, through a
death pipe, but the engine core is a `daemon` multiprocessing child of the frontend, ended only by the
frontend's normal exit (atexit); after a SIGKILL it is re-parented to init and keeps its workers alive.

`install_signal_handlers()` makes SIGTERM (what SLURM, submitit and `kill` send first) end a run as
Ctrl-C does: the run stops, its results file is already flushed line by line, and the engine is shut
down cleanly; a rerun into the same folder resumes.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys

log = logging.getLogger(__name__)

MARK = "TTSCALE_RUN"
GRACE = 3.0  # seconds between SIGTERM and SIGKILL

_WATCHDOG = r"""
import os, signal, sys, time
mark, grace, parent, every = sys.argv[1].encode(), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
me = os.getpid()
def table():
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if fields[0] != b"Z":
                out[int(entry)] = (int(fields[1]), fields[19])  # ppid, start time
        except (OSError, IndexError, ValueError):
            continue
    return out
def below(roots, procs):
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and child != me:
                found.add(child)
                todo.append(child)
    return found
tracked = {}
while os.getppid() == parent:
    try:
        procs = table()
        tracked = {pid: start for pid, start in tracked.items() if procs.get(pid, (0, None))[1] == start}
        for pid in below([parent], procs):
            tracked[pid] = procs[pid][1]
    except Exception:
        pass
    time.sleep(every)
def marked(procs):
    found = set()
    for pid in procs:
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if mark in handle.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    return found
def targets():
    try:
        procs = table()
        roots = {pid for pid, start in tracked.items() if pid in procs and procs[pid][1] == start} | marked(procs)
        return roots | below(roots, procs)
    except Exception:
        return set()  # no guess: a pid not confirmed is never signalled
def send(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
send(targets(), signal.SIGTERM)
deadline = time.monotonic() + grace
while time.monotonic() < deadline:
    if not targets():
        break
    time.sleep(0.1)
send(targets(), signal.SIGKILL)
"""
TRACK_EVERY = 0.5  # seconds between the watchdog's looks at its parent's process tree


def guard(grace: float = GRACE) -> str | None:
    """Start the watchdog for this process, once (a token that names this process already is its
    own). Returns the token, or None where it cannot work here."""
    token = os.environ.get(MARK, "")
    if token.split("-", 1)[0] == str(os.getpid()):
        return token
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
        log.warning("processes ttscale starts may outlive it here: the watchdog needs Linux's /proc")
        return None
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    env = {k: v for k, v in os.environ.items() if k not in (MARK, "LD_PRELOAD")}
    try:
        subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, f"{MARK}={token}", str(grace), str(os.getpid()),
                          str(TRACK_EVERY)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                         start_new_session=True, close_fds=True)
    except OSError as exc:
        log.warning("processes ttscale starts may outlive it: the watchdog did not start (%s)", exc)
        return None
    os.environ[MARK] = token
    return token


def install_signal_handlers() -> None:
    """SIGTERM ends the run as SIGINT does (KeyboardInterrupt in the main thread)."""

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        pass
