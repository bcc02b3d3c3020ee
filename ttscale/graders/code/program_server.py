"""The program's process: loads the candidate program and answers calls from the tests' process.

Started by the sandbox as `python -I -B program_server.py REQUEST_FD RESPONSE_FD LIMITS_JSON`, inside
bubblewrap where available, as a throw-away user. The program arrives on stdin. This process holds
nothing worth stealing — no test, no expected value, no secret: the tests run in another process
(test_runner.py) that sees only the plain data this one sends (wire.py), so a program that patches
builtins, fakes exits or forges output here changes only its own answers.

Messages in (one JSON line each): call / getattr / iter / next / len / getitem / str / repr / bool on a
top-level name or a handle, and exit. Out: {"ok": value}, {"raise": type name, "message": text}, or
{"stop": true} (StopIteration).
"""

import json
import os
import resource
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402  (mounted beside this file)


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
    try:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except BaseException:
        text = type(exc).__name__
    return text[:500]


def main():
    request_fd, response_fd, limits = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    program = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    sys.stdin.close()
    os.close(0)
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_AS", limits.get("memory_bytes"))
    _limit("RLIMIT_CPU", limits.get("cpu_seconds"))
    _limit("RLIMIT_FSIZE", limits.get("file_size_bytes"))
    _limit("RLIMIT_NPROC", limits.get("processes"))
    _limit("RLIMIT_NOFILE", limits.get("open_files"))
    channel = wire.Channel(request_fd, response_fd)
    handles = {}

    def register(obj):
        handles[len(handles) + 1] = obj
        return len(handles)

    def resolve(handle, _type):
        return handles[handle]

    # the program is a module of its own (`__candidate__`), registered so multiprocessing can pickle
    # its functions; `if __name__ == "__main__":` blocks do not run, as in every HumanEval harness
    module = types.ModuleType("__candidate__")
    sys.modules["__candidate__"] = module
    try:
        exec(compile(program, "<program>", "exec", dont_inherit=True), module.__dict__)
    except BaseException as exc:  # SystemExit too: the program does not get to leave quietly
        channel.send({"loaded": False, "error": _describe(exc)})
        _flush_and_exit(0)
    names = {}
    for name, value in list(module.__dict__.items()):
        if name.startswith("__") or isinstance(value, types.ModuleType):
            continue
        if callable(value):
            names[name] = {"kind": "callable"}
        else:
            try:
                names[name] = {"kind": "value", "value": wire.encode(value, register)}
            except BaseException:
                continue
    channel.send({"loaded": True, "names": names})

    def target(message):
        ref = message["target"]
        return handles[ref["handle"]] if "handle" in ref else module.__dict__[ref["name"]]

    while True:
        try:
            message = channel.receive()
        except EOFError:
            _flush_and_exit(3)  # the tests' process is gone without saying goodbye
        op = message.get("op")
        if op == "exit":
            _flush_and_exit(0)
        try:
            obj = target(message)
            if op == "call":
                args = wire.decode(message.get("args", []), resolve)
                kwargs = dict(wire.decode(message.get("kwargs", []), resolve))
                value = obj(*args, **kwargs)
            elif op == "getattr":
                value = getattr(obj, message["attr"])
            elif op == "iter":
                value = iter(obj)
            elif op == "next":
                try:
                    value = next(obj)
                except StopIteration:
                    channel.send({"stop": True})
                    continue
            elif op == "len":
                value = len(obj)
            elif op == "getitem":
                value = obj[wire.decode(message["key"], resolve)]
            elif op in ("str", "repr"):
                value = (str if op == "str" else repr)(obj)
            elif op == "bool":
                value = bool(obj)
            else:
                raise ValueError(f"unknown operation {op!r}")
            reply = {"ok": wire.encode(value, register)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are answers too
            reply = {"raise": type(exc).__name__[:100], "message": _message(exc)}
        try:
            channel.send(reply)
        except (wire.WireError, ValueError, RecursionError, TypeError) as exc:
            channel.send({"raise": "ValueError", "message": f"the value could not be sent: {_describe(exc)}"})


def _message(exc):
    try:
        return str(exc)[:500]
    except BaseException:
        return ""


def _flush_and_exit(code):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
