"""Watching one sandbox run: both processes' output drained as it comes (a capped tail each, the
report in full), the wall-clock deadline that grows with the tests' requests, and the CPU seconds of
each process tree, until both processes end or a limit is passed."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from dataclasses import dataclass, field

from ttscale.graders.code import cputime
from ttscale.graders.code.verdict import read_events

STREAMS = ("program_out", "program_err", "tests_out", "tests_err")


@dataclass
class Streams:
    """Output of both processes, drained as it comes: a capped tail each, the report in full (capped)."""

    tail_bytes: int
    drain_bytes: int = 64 << 20
    buffers: dict[str, bytearray] = field(default_factory=dict)
    drained: dict[str, int] = field(default_factory=dict)
    report: bytearray = field(default_factory=bytearray)
    scanned: int = 0  # bytes of the report read for "calls" events
    calls: int = 0

    def add(self, name: str, data: bytes) -> bool:
        """Keep `data`; False once a stream has given more than drain_bytes (then it is read no more)."""
        if name == "report":
            if len(self.report) < (16 << 20):
                self.report += data
            return True
        self.drained[name] = self.drained.get(name, 0) + len(data)
        buf = self.buffers.setdefault(name, bytearray())
        buf += data
        if len(buf) > 2 * self.tail_bytes:
            del buf[: len(buf) - self.tail_bytes]
        return self.drained[name] <= self.drain_bytes

    def requests(self, nonce: str) -> int:
        """The tests' requests to the program so far, as their latest "calls" report says."""
        end = self.report.rfind(b"\n") + 1
        if end > self.scanned:
            for event in read_events(bytes(self.report[self.scanned:end]), nonce):
                if event.get("event") == "calls" and type(event.get("n")) is int:
                    self.calls = event["n"]
            self.scanned = end
        return self.calls

    def text(self, name: str, chars: int) -> str:
        return bytes(self.buffers.get(name, b"")[-self.tail_bytes:]).decode(errors="replace")[-chars:]


def feed(stream, data: bytes) -> None:
    """Write `data` to a process's stdin and close it (a process that exits first loses nothing of ours)."""
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def selector_for(program_proc: subprocess.Popen, tests_proc: subprocess.Popen, report_r: int):
    """A selector over both processes' stdout and stderr and the report pipe, each non-blocking."""
    selector = selectors.DefaultSelector()
    for name, stream in zip(STREAMS, (program_proc.stdout, program_proc.stderr, tests_proc.stdout, tests_proc.stderr)):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream.fileno(), selectors.EVENT_READ, (name, stream))
    os.set_blocking(report_r, False)
    selector.register(report_r, selectors.EVENT_READ, ("report", None))
    return selector


def drain(selector, streams: Streams, wait: float) -> None:
    """Read what is ready within `wait` seconds into `streams`."""
    for key, _ in selector.select(wait):
        try:
            data = os.read(key.fd, 1 << 16)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        name, stream = key.data
        if not data:
            selector.unregister(key.fd)
        elif not streams.add(name, data):  # a flood: this process's output is read no more; its
            selector.unregister(key.fd)  # next write fails (EPIPE) instead of costing the grader a core
            stream.close()


def watch(selector, streams: Streams, procs: list[subprocess.Popen], limits, nonce: str,
          watch_cpu: bool) -> tuple[bool, bool]:
    """Drain output until both processes have ended, or the deadline passes (timed out), or a process
    tree's CPU seconds pass the limit (cpu over; watched from /proc when `watch_cpu`). Each request of
    the tests to the program adds `limits.call_allowance_us` to both limits, up to
    `limits.call_allowance_max` seconds. Returns (timed_out, cpu_over)."""
    deadline = time.monotonic() + limits.timeout
    allowed = 0.0  # seconds added to the deadline (and to the CPU limit) for the tests' requests so far
    timed_out = cpu_over = False
    cpu_checked = 0.0
    while True:
        if all(proc.poll() is not None for proc in procs):
            break
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if selector.get_map():
            drain(selector, streams, min(left, 0.02))
            extra = min(streams.requests(nonce) * limits.call_allowance_us * 1e-6, limits.call_allowance_max)
            deadline, allowed = deadline + extra - allowed, extra
        if watch_cpu and time.monotonic() - cpu_checked >= 0.05:
            cpu_checked = time.monotonic()
            if any((cputime.tree_cpu_seconds(proc.pid) or 0.0) > limits.cpu_seconds + allowed for proc in procs):
                cpu_over = True
                break
        else:  # between CPU checks (or every pipe closed): wait a little on a process still running
            for proc in procs:
                if proc.poll() is None:
                    try:
                        proc.wait(timeout=min(left, 0.02))
                    except subprocess.TimeoutExpired:
                        pass
                    break
    drain(selector, streams, 0)
    return timed_out, cpu_over
