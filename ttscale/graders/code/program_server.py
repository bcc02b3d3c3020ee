"""The program's process: loads the candidate program and answers calls from the tests' process.

Started by the sandbox as `python -I -S -B program_server.py REQUEST_FD RESPONSE_FD LIMITS_JSON`,
inside bubblewrap where available, as a throw-away user, under a seccomp filter (seccomp.py). The
program arrives on stdin. This process holds nothing worth stealing — no test, no expected value, no
secret: the tests run in another process (test_runner.py) that sees only the plain data this one sends
(wire.py), so a program that patches builtins, fakes exits or forges output here changes only its own
answers.

Messages in (one JSON line each): an operation (call / getattr / setattr / iter / next / len / getitem /
setitem / contains / str / repr / bool / eq / isinstance) on a top-level name or a handle, a callback's
answer, and exit. Out: {"ok": value, "args": ...} (the call's arguments again when they hold mutable
containers, so the tests' copies see the program's changes), {"raise": type name, "base": its nearest
builtin exception, "args": ..., "message": text}, {"stop": true} (the end of an iterator), or
{"callback": id, ...} (the program calls a function of the tests: a lambda passed as an argument).
"""

import json
import os
import resource
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402  (mounted beside this file)
import wire_channel  # noqa: E402  (likewise)


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


def _builtin_base(cls):
    """The nearest class of Python's own that an exception class derives from."""
    import builtins

    for base in getattr(cls, "__mro__", ()):
        if getattr(builtins, base.__name__, None) is base:
            return base.__name__
    return "Exception"


class Callback:
    """A function of the tests' process, passed as an argument: calling it asks the tests' process."""

    def __init__(self, server, ident):
        self._server, self._id = server, ident

    def __call__(self, *args, **kwargs):
        return self._server.callback(self._id, args, kwargs)


class Server:
    def __init__(self, channel, module):
        self.channel = channel
        self.module = module
        self.handles = {}

    def register(self, obj):
        self.handles[len(self.handles) + 1] = obj
        return len(self.handles)

    def resolve(self, handle, type_name):
        if type_name == "$callback":
            return Callback(self, handle)
        return self.handles[handle]

    def encode(self, value):
        return wire.encode(value, self.register)

    def target(self, message):
        ref = message["target"]
        return self.handles[ref["handle"]] if "handle" in ref else self.module.__dict__[ref["name"]]

    def callback(self, ident, args, kwargs):
        self.channel.send({"callback": ident, "args": self.encode(list(args)),
                           "kwargs": self.encode([[k, v] for k, v in kwargs.items()])})
        reply = self.serve(until_callback=True)
        if "ok" in reply:
            return wire.decode(reply["ok"], self.resolve)
        name = str(reply.get("raise", "Exception"))[:200]
        kind = getattr(__import__("builtins"), name, None)  # the callback's ValueError is a ValueError here too
        if isinstance(kind, type) and issubclass(kind, Exception) and name not in ("StopIteration", "StopAsyncIteration"):
            raise kind("raised by the tests' callback")
        raise RuntimeError(f"the tests' callback raised {name}")

    def serve(self, until_callback=False):
        """Answer requests; with until_callback, return the answer to the callback this process asked."""
        while True:
            try:
                message = self.channel.receive()
            except EOFError:
                _flush_and_exit(3)  # the tests' process is gone without saying goodbye
            if type(message) is not dict:
                _flush_and_exit(4)
            if "cb" in message:
                if until_callback:
                    return message
                continue
            op = message.get("op")
            if op == "exit":
                _flush_and_exit(0)
            self.channel.write(self.answer(op, message))

    def answer(self, op, message):
        """The reply to one request, made into its wire line (once: its size is checked there)."""
        synced = None
        try:
            obj = self.target(message)
            if op == "call":
                args = wire.decode(message.get("args", [[]]), self.resolve)
                kwargs = dict(wire.decode(message.get("kwargs", [[]]), self.resolve))
                value = obj(*args, **kwargs)
                if message.get("sync"):
                    synced = (args, [[k, v] for k, v in kwargs.items()])
            elif op == "getattr":
                value = getattr(obj, message["attr"])
            elif op == "setattr":
                setattr(obj, message["attr"], wire.decode(message["value"], self.resolve))
                value = None
            elif op == "iter":
                value = iter(obj)
            elif op == "next":
                try:
                    value = next(obj)
                except StopIteration:
                    return wire_channel.dumps({"stop": True})
            elif op == "len":
                value = len(obj)
            elif op == "getitem":
                value = obj[wire.decode(message["key"], self.resolve)]
            elif op == "setitem":
                obj[wire.decode(message["key"], self.resolve)] = wire.decode(message["value"], self.resolve)
                value = None
            elif op == "contains":
                value = bool(wire.decode(message["key"], self.resolve) in obj)
            elif op in ("str", "repr"):
                value = (str if op == "str" else repr)(obj)
            elif op == "bool":
                value = bool(obj)
            elif op == "eq":
                value = bool(obj == self.handles[message["other"]])
            elif op == "isinstance":
                cls = self.module.__dict__[message["cls"]]
                value = isinstance(obj, cls) if isinstance(cls, type) else False
            else:
                raise ValueError(f"unknown operation {op!r}")
            reply = {"ok": self.encode(value)}
            if synced is not None:
                reply["args"] = self.encode(synced[0])
                reply["kwargs"] = self.encode(synced[1])
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are answers too
            reply = self.error(exc)
        try:
            return wire_channel.dumps(reply)
        except (wire.WireError, ValueError, RecursionError, TypeError) as exc:
            return wire_channel.dumps({"raise": "ValueError", "base": "ValueError",
                                       "message": f"the value could not be sent: {_describe(exc)}"})

    def error(self, exc):
        reply = {"raise": type(exc).__name__[:100], "base": _builtin_base(type(exc)), "message": _message(exc)}
        try:
            reply["args"] = self.encode(list(exc.args))
        except BaseException:
            pass
        return reply


def _names(module, register):
    """What the program defines, for the tests' process: callables, classes (with the builtin base of
    an exception class), plain values, and the standard-library modules it imported."""
    names, modules = {}, {}
    for name, value in list(module.__dict__.items()):
        if name.startswith("__"):
            continue
        try:
            if isinstance(value, types.ModuleType):
                modules[name] = str(value.__name__)
            elif isinstance(value, type):
                info = {"kind": "class"}
                if issubclass(value, BaseException):
                    info["base"] = _builtin_base(value)
                names[name] = info
            elif callable(value):
                names[name] = {"kind": "callable"}
            else:
                names[name] = {"kind": "value", "value": wire.encode(value, register)}
        except BaseException:
            continue
    return names, modules


def main():
    request_fd, response_fd, limits = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    program = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    sys.stdin.close()
    os.close(0)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for path in limits.get("site") or ():
        sys.path.append(path)
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_AS", limits.get("memory_bytes"))
    _limit("RLIMIT_CPU", limits.get("cpu_seconds"))
    _limit("RLIMIT_FSIZE", limits.get("file_size_bytes"))
    _limit("RLIMIT_NPROC", limits.get("processes"))
    _limit("RLIMIT_NOFILE", limits.get("open_files"))
    wire.configure(limits.get("memory_bytes"))
    channel = wire_channel.Channel(request_fd, response_fd)
    filtered = None
    if limits.get("seccomp") == "inherited":  # bubblewrap installed it: check that it is there
        filtered = True if _filter_mode() else "bubblewrap did not install the filter"
    elif limits.get("seccomp") == "install":
        try:
            import seccomp

            seccomp.install()
            filtered = True
        except (OSError, AttributeError, ImportError) as exc:
            filtered = f"{type(exc).__name__}: {exc}"[:300]
    # the program is a module of its own (`__candidate__`), registered so multiprocessing can pickle
    # its functions; `if __name__ == "__main__":` blocks do not run, as in every HumanEval harness
    module = types.ModuleType("__candidate__")
    sys.modules["__candidate__"] = module
    server = Server(channel, module)
    try:
        exec(compile(program, "<program>", "exec", dont_inherit=True), module.__dict__)
    except BaseException as exc:  # SystemExit too: the program does not get to leave quietly
        channel.send({"loaded": False, "error": _describe(exc), "seccomp": filtered})
        _flush_and_exit(0)
    names, modules = _names(module, server.register)
    try:
        channel.send({"loaded": True, "names": names, "modules": modules, "seccomp": filtered})
    except (wire.WireError, ValueError, TypeError):  # values too large to send: the names alone
        names = {k: v for k, v in names.items() if v["kind"] != "value"}
        channel.send({"loaded": True, "names": names, "modules": modules, "seccomp": filtered})
    server.serve()


def _filter_mode():
    """Whether this process runs under a seccomp filter (/proc/self/status: Seccomp 2)."""
    try:
        with open("/proc/self/status") as handle:
            return any(line.split()[1:2] == ["2"] for line in handle if line.startswith("Seccomp:"))
    except OSError:
        return False


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
