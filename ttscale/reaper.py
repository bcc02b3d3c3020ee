"""Every process ttscale starts ends with it, however it ends (SIGKILL and the OOM killer included).

`guard()` marks this process's environment with TTSCALE_RUN=<token>, which every process it starts
inherits: vLLM's engine core and its workers, the math grader's workers, servers started by
`ttscale.backends.launch`, `ttscale serve`'s engine. It then starts a watchdog in a session of its
own (so a signal to ttscale's process group does not reach it) that watches its parent: when ttscale
ends in any way, the watchdog is re-parented, and it sends SIGTERM to every process whose environment
carries the token, and SIGKILL `grace` seconds later to those still there. (Its parent, not a pipe:
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
mark, grace, parent = sys.argv[1].encode(), float(sys.argv[2]), int(sys.argv[3])
me = os.getpid()
while os.getppid() == parent:
    time.sleep(0.2)
def marked():
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if mark in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found
for pid in marked():
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
deadline = time.monotonic() + grace
while time.monotonic() < deadline:
    left = marked()
    if not left:
        break
    time.sleep(0.1)
for pid in marked():
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


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
        subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, f"{MARK}={token}", str(grace), str(os.getpid())],
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
