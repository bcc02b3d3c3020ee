"""The tests' process: runs a problem's setup, probes and tests against the program in another process.

Started by the sandbox as `python -I -B test_runner.py TO_PROGRAM_FD FROM_PROGRAM_FD REPORT_FD`; the
job (nonce, setup, probes, tests, limits) arrives on stdin. The program's top-level functions and
classes appear here as proxies: calling one sends plain-data arguments to the program's process and
returns the plain data it answers (wire.py), so the comparisons in the tests run on values built by
this process with its own operators. What the program returns that is not plain data comes back as an
opaque handle: it can be passed back, called, iterated or asked for attributes (each answered by the
program), but it compares equal only to itself.

Events go to the report fd as lines "<nonce> <json>": the program loaded (or not), each probe's value,
each test's outcome, "gone" if the program's process ended during the tests, and "done" last.
"""

import builtins
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402  (mounted beside this file)


class ProgramGone(Exception):
    """The program's process ended (or broke the protocol) before answering."""


class RemoteError(Exception):
    """The program raised an exception that is not one of Python's built-in ones."""


def _exception(name, message):
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, (ProgramGone, Warning)):
        try:
            return cls(message)
        except BaseException:
            pass
    return RemoteError(message)


class Remote:
    """The program's side of things: a top-level name, or a handle to a value it returned."""

    def __init__(self, client, ref, type_name):
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)

    def __call__(self, *args, **kwargs):
        return self._client.ask("call", self._ref, args=self._client.encode(list(args)),
                                kwargs=self._client.encode([[k, v] for k, v in kwargs.items()]))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._client.ask("getattr", self._ref, attr=name)

    def __iter__(self):
        return self._client.ask("iter", self._ref)

    def __next__(self):
        return self._client.ask("next", self._ref)

    def __len__(self):
        return self._client.ask("len", self._ref)

    def __getitem__(self, key):
        return self._client.ask("getitem", self._ref, key=self._client.encode(key))

    def __str__(self):
        return self._client.ask("str", self._ref)

    def __bool__(self):
        return bool(self._client.ask("bool", self._ref))

    def __repr__(self):
        return f"<{self._type} of the program>"

    # no __eq__ of the program's: a handle equals only itself (identity), whatever the program says
    __hash__ = object.__hash__


class Client:
    def __init__(self, channel):
        self.channel = channel
        self.gone = None
        self.handles = {}

    def encode(self, value):
        def register(obj):
            if isinstance(obj, Remote) and "handle" in obj._ref:
                return obj._ref["handle"]
            raise TypeError(f"a {type(obj).__name__} cannot be sent to the program (plain data only)")

        def tagged(value):
            if isinstance(value, Remote) and "name" in value._ref:
                raise TypeError("a function of the program cannot be passed back to it")
            return value

        return wire.encode(tagged(value), register)

    def resolve(self, handle, type_name):
        if handle not in self.handles:
            self.handles[handle] = Remote(self, {"handle": handle}, type_name)
        return self.handles[handle]

    def ask(self, op, ref, **fields):
        if self.gone:
            raise ProgramGone(self.gone)
        try:
            self.channel.send({"op": op, "target": ref, **fields})
            reply = self.channel.receive()
            if type(reply) is not dict:
                raise wire.WireError("the program's reply is not a message")
            if "ok" in reply:
                return wire.decode(reply["ok"], self.resolve)
        except (EOFError, OSError, wire.WireError, RecursionError) as exc:
            self.gone = f"the program's process ended or broke the protocol: {type(exc).__name__}: {exc}"[:500]
            raise ProgramGone(self.gone) from None
        if reply.get("stop"):
            raise StopIteration
        raise _exception(str(reply.get("raise", "Exception"))[:100], str(reply.get("message", ""))[:1000])


def _describe(exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:500]


def _not_dumpable():
    """Same-user processes (the program, without namespaces) cannot open this one's fds or memory."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def main():
    to_program, from_program, report_fd = (int(a) for a in sys.argv[1:4])
    _not_dumpable()
    job = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    nonce = job["nonce"].encode()
    limits = job.get("limits") or {}
    for name, key in (("RLIMIT_AS", "memory_bytes"), ("RLIMIT_CPU", "cpu_seconds")):
        if limits.get(key):
            resource.setrlimit(getattr(resource, name), (int(limits[key]), int(limits[key]) + (1 if name == "RLIMIT_CPU" else 0)))

    def report(**event):
        os.write(report_fd, nonce + b" " + json.dumps(event).encode() + b"\n")

    client = Client(wire.Channel(from_program, to_program))
    try:
        hello = client.channel.receive()
        if type(hello) is not dict or type(hello.get("loaded")) is not bool:
            raise wire.WireError("the program wrote over its channel before loading")
    except (EOFError, OSError, wire.WireError) as exc:
        report(event="program", status="gone", error=f"{type(exc).__name__}: {exc}"[:300])
        report(event="done")
        return
    if not hello["loaded"]:
        report(event="program", status="error", error=str(hello.get("error"))[:500])
        report(event="done")
        return
    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    for name, info in dict(hello.get("names") or {}).items():
        try:
            if info.get("kind") == "callable":
                namespace[name] = Remote(client, {"name": str(name)}, "function")
            else:
                namespace[name] = wire.decode(info.get("value"), client.resolve)
        except (wire.WireError, RecursionError, AttributeError, TypeError):
            continue
    report(event="program", status="ok")
    try:
        if job.get("setup"):
            exec(compile(job["setup"], "<setup>", "exec", dont_inherit=True), namespace)
    except BaseException as exc:
        report(event="setup", status="error", error=_describe(exc))
        report(event="done")
        return
    for index, expression in enumerate(job.get("probes") or ()):  # values on given inputs: execution voting
        try:
            value = eval(compile(expression, f"<probe {index}>", "eval", dont_inherit=True), namespace)
            report(event="probe", index=index, value=repr(value)[:1000])
        except BaseException as exc:
            report(event="probe", index=index, error=type(exc).__name__)
    for index, test in enumerate(job.get("tests") or ()):
        try:
            exec(compile(test, f"<test {index}>", "exec", dont_inherit=True), namespace)
        except AssertionError as exc:
            report(event="test", index=index, status="fail", error=_describe(exc))
        except BaseException as exc:
            report(event="test", index=index, status="error", error=_describe(exc))
        else:
            report(event="test", index=index, status="pass")
    if client.gone:
        report(event="gone", error=client.gone)
    else:
        try:
            client.channel.send({"op": "exit"})
        except OSError:
            pass
    report(event="done")


if __name__ == "__main__":
    main()
