"""A pool of worker processes whose per-call timeout is enforced from outside.

A call that runs past its deadline has its worker killed (SIGKILL) and replaced on the next call. That
stops work a signal cannot interrupt (a sympy loop in C), and it works the same when called from
threads, from async code (`acall`) or from other worker processes, because nothing relies on signals in
the caller.

Workers are plain `python -c` subprocesses that import only the module of the function they run, so
the pool works from `python -`, notebooks and scripts without a `__main__` guard (multiprocessing's
spawn would re-run such a script in every worker). A call never answers for a check that did not run:
it raises `WorkerError` (timed out, the worker died or could not start, the function raised), and the
caller decides what "undecided" means. No call blocks forever: waiting for a free worker, starting one
and the call itself each have a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

_BOOT = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from ttscale.graders.pool import _serve; _serve(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])"
)


class WorkerError(RuntimeError):
    """The call did not produce an answer: `kind` is timeout | died | start | raised | cancelled | closed."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _serve(read_fd: int, write_fd: int, initializer: str) -> None:
    """The worker's loop: (fn, args) in, (True, value) or (False, "Type: message") out."""
    import signal

    # Ctrl-C in a terminal reaches the whole process group: the run stops its workers itself (and a
    # worker's traceback per Ctrl-C would bury the run's one line)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn_in, conn_out = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    if initializer:
        module, _, name = initializer.rpartition(":")
        getattr(__import__(module, fromlist=[name]), name)()
    conn_out.send("ready")
    while True:
        try:
            fn, args = conn_in.recv()
        except EOFError:
            return
        try:
            conn_out.send((True, fn(*args)))
        except Exception as exc:  # report, keep serving
            conn_out.send((False, f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, initializer: str):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps([p for p in sys.path if p]), str(to_child_r),
                 str(from_child_w), initializer],
                stdin=subprocess.DEVNULL, pass_fds=(to_child_r, from_child_w), close_fds=True)
        except BaseException:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise
        os.close(to_child_r)
        os.close(from_child_w)
        self.send_conn = Connection(to_child_w, readable=False)
        self.recv_conn = Connection(from_child_r, writable=False)
        self.ready = False

    def wait_ready(self, timeout: float) -> bool:
        if not self.ready and self.recv_conn.poll(timeout):
            self.ready = self.recv_conn.recv() == "ready"
        return self.ready

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for conn in (self.send_conn, self.recv_conn):
            try:
                conn.close()
            except OSError:
                pass


class WorkerPool:
    """`size` persistent worker processes, started lazily; each call is bounded by `timeout` seconds.

    initializer: "module:function" run once in each worker (imports that should not count per call).
    """

    def __init__(self, size: int = 2, timeout: float = 10.0, initializer: str = "", start_timeout: float = 120.0):
        self.size = max(1, size)
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._initializer = initializer
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()  # idle and busy: close() kills them all
        self._cond = threading.Condition()
        self._closed = False
        self.timeouts = 0
        self.failures = 0  # workers that died or could not start

    # -- workers ---------------------------------------------------------------------------------
    def _acquire(self, deadline: float) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise WorkerError("closed", "WorkerPool is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._live) < self.size:
                    try:
                        worker = _Worker(self._initializer)
                    except OSError as exc:  # e.g. file descriptors exhausted: the slot stays free
                        self.failures += 1
                        raise WorkerError("start", f"could not start a worker: {exc}") from None
                    self._live.add(worker)
                    return worker
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerError("timeout", "no worker became free in time")
                self._cond.wait(left)

    def start(self) -> int:
        """Start the workers not yet started and wait until the idle ones are ready (their imports
        done), so that a call bounded by a deadline of its own does not pay a worker's start. Busy
        workers are left alone. Returns how many workers were made ready."""
        taken: list[_Worker] = []
        with self._cond:
            while not self._closed and len(taken) < self.size:
                if self._idle:
                    taken.append(self._idle.pop())
                elif len(self._live) < self.size:
                    try:
                        worker = _Worker(self._initializer)
                    except OSError:
                        self.failures += 1
                        break
                    self._live.add(worker)
                    taken.append(worker)
                else:
                    break
        ready = 0
        for worker in taken:
            ok = worker.wait_ready(self.start_timeout)
            ready += ok
            if not ok:
                self.failures += 1
            self._release(worker, ok)
        return ready

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            worker.kill()
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(worker)
            else:
                self._live.discard(worker)
                if healthy:
                    worker.kill()
            self._cond.notify()

    # -- calls -----------------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
             cancel: threading.Event | None = None) -> Any:
        """fn(*args) in a worker. Raises WorkerError when it times out, raises, or the worker dies."""
        limit = self.timeout if timeout is None else timeout
        worker = self._acquire(time.monotonic() + self.start_timeout + limit)
        healthy = False
        try:
            if not worker.wait_ready(self.start_timeout):  # start-up (imports) is not counted against the call
                self.failures += 1
                raise WorkerError("start", "the worker did not start")
            worker.send_conn.send((fn, args))
            deadline = time.monotonic() + limit
            while True:  # short slices, so a cancelled call frees its worker at once
                if cancel is not None and cancel.is_set():
                    raise WorkerError("cancelled", "the check was cancelled")
                left = deadline - time.monotonic()
                if left <= 0:
                    with self._cond:
                        self.timeouts += 1
                    raise WorkerError("timeout", f"the check ran past {limit:g} s")
                if worker.recv_conn.poll(min(left, 0.2)):
                    ok, value = worker.recv_conn.recv()
                    healthy = True
                    if not ok:
                        raise WorkerError("raised", value)
                    return value
        except (EOFError, OSError) as exc:
            with self._cond:
                self.failures += 1
            raise WorkerError("died", f"the worker died: {type(exc).__name__}: {exc}") from None
        finally:
            self._release(worker, healthy)

    async def acall(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """`call` from async code; cancelling the task kills the worker's check at once."""
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self.call, fn, *args, timeout=timeout, cancel=cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise

    def map(self, fn: Callable[..., Any], arg_tuples: Iterable[tuple], on_error: Callable[[WorkerError], Any],
            timeout: float | None = None) -> list[Any]:
        """fn over many argument tuples on all workers at once, keeping order; a failed call gives
        on_error(the WorkerError); `timeout`: each call's bound (default: the pool's)."""
        items = list(arg_tuples)
        if not items:
            return []

        def one(args: tuple) -> Any:
            try:
                return self.call(fn, *args, timeout=timeout)
            except WorkerError as exc:
                return on_error(exc)

        if len(items) == 1:  # no threads to start for one call (the common single check)
            return [one(items[0])]
        with ThreadPoolExecutor(max_workers=min(self.size, len(items))) as threads:
            return list(threads.map(one, items))

    def close(self) -> None:
        """Kill every worker, busy ones too (their calls raise WorkerError)."""
        with self._cond:
            self._closed = True
            workers = list(self._live)
            self._live.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
