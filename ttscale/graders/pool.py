"""A pool of worker processes whose per-call timeout is enforced from outside.

A call that runs past its deadline has its worker killed (SIGKILL) and replaced; the call returns
`default`. That stops work a signal cannot interrupt (a sympy loop in C), and it works the same when
called from threads, from async code (via asyncio.to_thread) or from other worker processes, because
nothing relies on signals in the caller.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any


def _serve(conn: Connection, initializer: Callable[[], None] | None) -> None:
    if initializer is not None:
        initializer()
    conn.send("ready")
    while True:
        try:
            fn, args = conn.recv()
        except EOFError:
            return
        try:
            conn.send((True, fn(*args)))
        except Exception as exc:  # report, keep serving
            conn.send((False, f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx, initializer):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, initializer), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False

    def wait_ready(self, timeout: float = 120.0) -> bool:
        if not self.ready and self.conn.poll(timeout):
            self.ready = self.conn.recv() == "ready"
        return self.ready

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class WorkerPool:
    """`size` persistent worker processes, started lazily; `call` blocks up to `timeout` seconds."""

    def __init__(
        self,
        size: int = 2,
        timeout: float = 10.0,
        initializer: Callable[[], None] | None = None,
        start_method: str = "spawn",
    ):
        self.size = max(1, size)
        self.timeout = timeout
        self._initializer = initializer
        self._ctx = mp.get_context(start_method)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._closed = False
        self.timeouts = 0

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("WorkerPool is closed")
            if self._idle.empty() and self._started < self.size:
                self._started += 1
                return _Worker(self._ctx, self._initializer)
        return self._idle.get()

    def call(self, fn: Callable[..., Any], *args: Any, default: Any = None, timeout: float | None = None) -> Any:
        """fn(*args) in a worker; `default` if it times out, raises, or the worker dies."""
        worker = self._acquire()
        limit = self.timeout if timeout is None else timeout
        try:
            if not worker.wait_ready():  # start-up (imports) is not counted against the call
                raise OSError("worker did not start")
            worker.conn.send((fn, args))
            if worker.conn.poll(limit):
                ok, value = worker.conn.recv()
                self._idle.put(worker)
                return value if ok else default
        except (EOFError, OSError, BrokenPipeError):
            pass
        with self._lock:
            self.timeouts += 1
        worker.kill()
        self._idle.put(_Worker(self._ctx, self._initializer))
        return default

    def map(self, fn: Callable[..., Any], arg_tuples: Iterable[tuple], default: Any = None) -> list[Any]:
        """Run fn over many argument tuples on all workers at once, keeping order."""
        items = list(arg_tuples)
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=self.size) as threads:
            return list(threads.map(lambda a: self.call(fn, *a, default=default), items))

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while not self._idle.empty():
            worker = self._idle.get_nowait()
            try:
                worker.conn.close()
            finally:
                worker.proc.kill()
                worker.proc.join(timeout=5)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
