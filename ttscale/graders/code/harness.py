"""Runs one program and its tests inside the sandbox; started as `python -I harness.py`.

Standalone on purpose (no ttscale import): it is the only code the sandbox needs besides Python.

Protocol. The job arrives as JSON on stdin, which is then closed: {nonce, report_fd, limits,
program, setup, probes, tests}. Every event goes to the report fd as one line "<nonce> <json>": the
program loaded (or not), each probe's value, each test's outcome, and last "done" once every test
has run. The parent counts a
pass only from these lines, so a program that exits early (`os._exit(0)`, `sys.exit`), prints a
success marker, or redefines `exit`/builtins cannot pass: it does not know the nonce, and the
harness keeps its own references to what it needs. An audit hook blocks the usual ways of reading
the nonce back out of this process (frames, the garbage collector, trace hooks, ctypes, /proc/*/mem).
Python's audit hooks are not a security boundary: the operating-system layer (bubblewrap, limits)
contains what the program does; the hook only keeps the pass signal honest against the cheats
models are known to try.
"""

import json
import os
import resource
import sys

_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_BLOCKED_EVENTS = frozenset({"sys._current_frames", "sys.settrace", "sys.setprofile", "gc.get_objects",
                             "gc.get_referrers", "gc.get_referents", "ctypes.dlopen", "ctypes.dlsym",
                             "ctypes.string_at", "ctypes.addressof", "ctypes.cdata", "ctypes.get_errno",
                             "ctypes.call_function", "ctypes.PyObj_FromPtr"})


def _audit(event, args):
    if event == "sys._getframe":
        raise ValueError("sys._getframe is not available in the ttscale sandbox")  # namedtuple/typing catch it
    if event in _BLOCKED_EVENTS:
        raise PermissionError(f"{event} is not available in the ttscale sandbox")
    if event == "object.__getattr__" and args[1] in _FRAME_ATTRIBUTES:
        raise PermissionError(f"{args[1]} is not available in the ttscale sandbox")
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = os.fsdecode(args[0])
        if path.startswith("/proc/") and path.rstrip("/").rsplit("/", 1)[-1] in ("mem", "environ", "maps"):
            raise PermissionError(f"{path} is not available in the ttscale sandbox")


def _limit(name, value):
    if value is None:
        return
    kind = getattr(resource, name)
    soft, hard = resource.getrlimit(kind)
    value = int(value)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    # CPU: SIGXCPU at the soft limit, SIGKILL one second later (a handler cannot outlast it)
    new_hard = value + 1 if name == "RLIMIT_CPU" and hard == resource.RLIM_INFINITY else value
    resource.setrlimit(kind, (value, new_hard))


def _describe(exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:500]


def main():
    job = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    os.close(0)
    # its own references: the program may rebind builtins (AssertionError, exit, print) and modules
    write, dumps, exit_now = os.write, json.dumps, os._exit
    assertion_error, base_exception, describe = AssertionError, BaseException, _describe
    streams = (sys.stdout, sys.stderr)

    def finish():
        for stream in streams:  # the program's own output, before the process ends without cleanup
            try:
                stream.flush()
            except base_exception:
                pass
        report(event="done")
        exit_now(0)  # no atexit handlers or finalizers of the program run after the verdict
    nonce = job.pop("nonce").encode()
    fd = job["report_fd"]

    def report(**event):
        write(fd, nonce + b" " + dumps(event).encode() + b"\n")

    limits = job.get("limits") or {}
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_AS", limits.get("memory_bytes"))
    _limit("RLIMIT_CPU", limits.get("cpu_seconds"))
    _limit("RLIMIT_FSIZE", limits.get("file_size_bytes"))
    _limit("RLIMIT_NPROC", limits.get("processes"))
    _limit("RLIMIT_NOFILE", limits.get("open_files"))
    program, setup, tests = job["program"], job.get("setup") or "", list(job.get("tests") or ())
    probes = list(job.get("probes") or ())
    del job
    sys.addaudithook(_audit)

    namespace = {"__name__": "__candidate__", "__builtins__": __builtins__}
    try:
        exec(compile(program, "<program>", "exec", dont_inherit=True), namespace)
        if setup:
            exec(compile(setup, "<setup>", "exec", dont_inherit=True), namespace)
    except base_exception as exc:  # SystemExit and KeyboardInterrupt too: the program does not get to leave
        report(event="program", status="error", error=describe(exc))
        finish()
    report(event="program", status="ok")
    for index, expression in enumerate(probes):  # values on given inputs, for execution-based voting
        try:
            value = repr(eval(compile(expression, f"<probe {index}>", "eval", dont_inherit=True), namespace))[:1000]
            report(event="probe", index=index, value=value)
        except base_exception as exc:
            report(event="probe", index=index, error=type(exc).__name__)
    for index, test in enumerate(tests):
        try:
            exec(compile(test, f"<test {index}>", "exec", dont_inherit=True), namespace)
        except assertion_error as exc:
            report(event="test", index=index, status="fail", error=describe(exc))
        except base_exception as exc:
            report(event="test", index=index, status="error", error=describe(exc))
        else:
            report(event="test", index=index, status="pass")
    finish()


if __name__ == "__main__":
    main()
