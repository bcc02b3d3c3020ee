"""The tests' process: runs a problem's setup, probes and tests against the program in another process.

Started by the sandbox as `python -I -B test_runner.py TO_PROGRAM_FD FROM_PROGRAM_FD REPORT_FD`; the
job (nonce, setup, probes, tests, exports, limits) arrives on stdin.

The tests' namespace is built in this order, each later step winning: Python's builtins; the program's
names the task exports (its entry point and the names the tests use that nothing else defines), never
one that shadows a builtin or a standard-library module but the entry point itself (a task's function
may be named `max` or `copy`); the standard-library modules of IMPORTABLE that the program's top-level
imports name (read by a static parse in the grader, never from the program's globals), imported here
as real modules; then the task's trusted setup (test imports, the prompt's
helper functions, HumanEval's METADATA and `candidate = ...`).

The program's functions appear here as proxies: calling one sends plain-data arguments to the program's
process and returns the plain data it answers (wire.py), so the comparisons in the tests run on values
built by this process with its own operators. Mutable arguments come back as the program left them;
functions of the tests passed as arguments (callbacks) are called here when the program calls them.
Exceptions arrive as subclasses of their nearest builtin exception (`except ValueError` catches the
program's ValueError subclass), with their args; StopIteration never crosses (it would end the tests'
own loops). The program's classes are types here: calling one builds an object in the program's
process, `isinstance` asks the program. What the program returns that is not plain data comes back
as an opaque handle: it can be passed back, called, iterated, indexed, asked for attributes (each
answered by the program), and compares equal only to itself or, when both sides are the program's
objects, as the program's own `==` says.

Events go to the report fd as lines "<nonce> <json>": the program loaded (or not), each probe's value
(a hash of its full canonical form, and a short repr), each test's outcome, "gone" if the program's
process ended during the tests, and "done" last.
"""

import builtins
import importlib
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402  (mounted beside this file)

NEVER_CROSS = ("StopIteration", "StopAsyncIteration", "GeneratorExit")
NOT_IMPORTED = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "webbrowser", "pydoc"}
# the standard-library modules a program's top-level imports (read by a static parse, never from the
# program's globals) may bring into the tests' namespace: plain libraries with no command line to run
IMPORTABLE = frozenset({
    "math", "cmath", "re", "string", "collections", "collections.abc", "itertools", "functools", "operator",
    "heapq", "bisect", "array", "copy", "datetime", "calendar", "fractions", "decimal", "numbers", "statistics",
    "random", "json", "typing", "dataclasses", "enum", "textwrap", "unicodedata", "hashlib", "struct", "time",
    "os.path", "difflib", "pprint", "reprlib", "graphlib", "zlib", "binascii", "base64"})


class ProgramGone(Exception):
    """The program's process ended (or broke the protocol) before answering."""


class RemoteError(Exception):
    """The program raised an exception that derives from none of Python's own (or one that must not
    cross, such as StopIteration)."""


class Remote:
    """The program's side of things: a top-level name, or a handle to a value it returned."""

    def __init__(self, client, ref, type_name):
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)

    def __call__(self, *args, **kwargs):
        return self._client.call(self._ref, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._client.ask("getattr", self._ref, attr=name)

    def __setattr__(self, name, value):
        self._client.ask("setattr", self._ref, attr=str(name), value=self._client.encode(value))

    def __iter__(self):
        return self._client.ask("iter", self._ref)

    def __next__(self):
        return self._client.ask("next", self._ref)

    def __len__(self):
        return self._client.ask("len", self._ref)

    def __getitem__(self, key):
        return self._client.ask("getitem", self._ref, key=self._client.encode(key))

    def __setitem__(self, key, value):
        self._client.ask("setitem", self._ref, key=self._client.encode(key), value=self._client.encode(value))

    def __contains__(self, key):
        return bool(self._client.ask("contains", self._ref, key=self._client.encode(key)))

    def __str__(self):
        return str(self._client.ask("str", self._ref))

    def __bool__(self):
        return bool(self._client.ask("bool", self._ref))

    def __eq__(self, other):
        if other is self:
            return True
        if isinstance(other, Remote) and "handle" in self._ref and "handle" in other._ref:
            return bool(self._client.ask("eq", self._ref, other=other._ref["handle"]))
        return NotImplemented  # never the program's word against a value of the tests

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __repr__(self):
        return f"<{self._type} of the program>"

    __hash__ = object.__hash__


class RemoteType(type):
    """The type of the program's classes here: calling one builds an object in the program's process;
    isinstance(handle, cls) asks the program; other attributes are the program's."""

    def __call__(cls, *args, **kwargs):
        return cls._remote(*args, **kwargs)

    def __instancecheck__(cls, obj):
        if isinstance(obj, Remote) and "handle" in obj._ref:
            return bool(obj._client.ask("isinstance", obj._ref, cls=cls.__name__))
        return False

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls._remote, name)


class Client:
    PROGRESS_EVERY = 1024  # requests between two "calls" reports (the sandbox extends its timeout by them)

    def __init__(self, channel, progress=None):
        self.channel = channel
        self.requests = 0  # sent by the tests (never by the program: a callback's answer is not counted)
        self.progress = progress
        self.gone = None
        self.handles = {}
        self.callbacks = {}
        self.exceptions = {}  # (name, builtin base) -> class
        self.namespace = {}

    def encode(self, value):
        def register(obj):
            if isinstance(obj, Remote):
                if "handle" in obj._ref:
                    return obj._ref["handle"]
                raise TypeError("a function of the program cannot be passed back to it")
            if isinstance(obj, RemoteType):
                raise TypeError("a class of the program cannot be passed back to it")
            if callable(obj):
                self.callbacks[len(self.callbacks) + 1] = obj
                return len(self.callbacks), "$callback"
            raise TypeError(f"a {type(obj).__name__} cannot be sent to the program (plain data only)")

        return wire.encode(value, register)

    def resolve(self, handle, type_name):
        if handle not in self.handles:
            self.handles[handle] = Remote(self, {"handle": handle}, type_name)
        return self.handles[handle]

    def call(self, ref, args, kwargs):
        args = list(args)
        pairs = [[k, v] for k, v in kwargs.items()]
        encoded_args, encoded_kwargs = self.encode(args), self.encode(pairs)
        sync = any(type(n) is list and n[0] in wire.MUTABLE_TAGS for n in encoded_args[1:] + encoded_kwargs[1:])
        reply = self.exchange({"op": "call", "target": ref, "args": encoded_args, "kwargs": encoded_kwargs,
                               **({"sync": True} if sync else {})})
        value = self.result(reply, "call")
        if sync and "args" in reply:
            try:
                wire.update_in_place(args, wire.decode(reply["args"], self.resolve))
                new_pairs = wire.decode(reply["kwargs"], self.resolve)
                for (_, old), (_, new) in zip(pairs, new_pairs):
                    wire.update_in_place(old, new)
            except (wire.WireError, TypeError, ValueError):
                pass
        return value

    def ask(self, op, ref, **fields):
        return self.result(self.exchange({"op": op, "target": ref, **fields}), op)

    def exchange(self, message):
        """Send a request, answer the program's callbacks meanwhile, and return its reply."""
        if self.gone:
            raise ProgramGone(self.gone)
        self.requests += 1
        if self.progress is not None and not self.requests % self.PROGRESS_EVERY:
            self.progress(self.requests)
        try:
            self.channel.send(message)
            while True:
                reply = self.channel.receive()
                if type(reply) is not dict:
                    raise wire.WireError("the program's reply is not a message")
                if "callback" not in reply:
                    return reply
                self.channel.send(self.run_callback(reply))
        except (EOFError, OSError, wire.WireError, RecursionError) as exc:
            self.gone = f"the program's process ended or broke the protocol: {type(exc).__name__}: {exc}"[:500]
            raise ProgramGone(self.gone) from None

    def run_callback(self, request):
        try:
            function = self.callbacks[int(request["callback"])]
            args = wire.decode(request.get("args", [[]]), self.resolve)
            kwargs = dict(wire.decode(request.get("kwargs", [[]]), self.resolve))
        except (KeyError, TypeError, ValueError, wire.WireError) as exc:
            return {"cb": "raise", "raise": f"a malformed callback: {type(exc).__name__}"}
        try:
            return {"cb": "ok", "ok": self.encode(function(*args, **kwargs))}
        except ProgramGone:
            raise
        except BaseException as exc:
            return {"cb": "raise", "raise": type(exc).__name__[:100]}

    def result(self, reply, op):
        """The value of a reply to `op`; "stop" (the end of an iterator) answers only a "next" request:
        anywhere else it is a protocol error, never a StopIteration that would end the tests' own loop
        (`all(map(f, xs))`)."""
        if reply.get("stop") and op != "next":
            self.gone = f"the program's process broke the protocol: a 'stop' reply to a {op!r} request"[:500]
            raise ProgramGone(self.gone)
        if "ok" in reply:
            try:
                return wire.decode(reply["ok"], self.resolve)
            except (wire.WireError, RecursionError) as exc:
                self.gone = f"the program's process broke the protocol: {exc}"[:500]
                raise ProgramGone(self.gone) from None
        if reply.get("stop"):
            raise StopIteration
        raise self.exception(reply)

    def exception(self, reply):
        name = str(reply.get("raise", "Exception"))[:100]
        base_name = str(reply.get("base", name))[:100]
        message = str(reply.get("message", ""))[:1000]
        base = getattr(builtins, base_name, None)
        if (name in NEVER_CROSS or base_name in NEVER_CROSS or not isinstance(base, type)
                or not issubclass(base, Exception) or issubclass(base, (ProgramGone, RemoteError))):
            return RemoteError(f"{name}: {message}" if message else name)
        try:
            args = tuple(wire.decode(reply["args"], self.resolve)) if "args" in reply else (message,)
        except (wire.WireError, TypeError, ValueError):
            args = (message,)
        cls = base if name == base_name else self.exception_class(name, base)
        try:
            return cls(*args)
        except BaseException:
            try:
                return cls(message)
            except BaseException:
                return RemoteError(f"{name}: {message}")

    def exception_class(self, name, base):
        """A class of this process standing for the program's exception class (the one the tests'
        namespace binds under its name, when the program exports it)."""
        key = (name, base.__name__)
        if key not in self.exceptions:
            self.exceptions[key] = type(name, (base,), {"__module__": "__candidate__"})
        return self.exceptions[key]


def _describe(exc):
    try:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except BaseException:
        text = type(exc).__name__
    return text[:500]


def _not_dumpable():
    """Same-user processes (the program, without namespaces) cannot open this one's fds or memory."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def _stdlib(name):
    top = name.split(".", 1)[0]
    return top in getattr(sys, "stdlib_module_names", ()) and top not in NOT_IMPORTED and not top.startswith("_")


def namespace_for(client, hello, exports, entry=None, modules=None):
    """The tests' globals before the setup runs (see the module doc). The entry point (`entry`, the
    first export) is always the program's, even when it is named like a builtin or a module (`max`,
    `copy`): the tests call the task's function; the shadowing rules keep the program's other names out."""
    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    shadowed = set(dir(builtins))
    for name, info in dict(hello.get("names") or {}).items():
        name = str(name)
        if name != entry and ((exports is not None and name not in exports) or name in shadowed or _stdlib(name)):
            continue
        try:
            kind = info.get("kind")
            if kind == "callable":
                namespace[name] = Remote(client, {"name": name}, "function")
            elif kind == "class":
                base = getattr(builtins, str(info.get("base")), None) if info.get("base") else None
                if isinstance(base, type) and issubclass(base, Exception) and str(info.get("base")) not in NEVER_CROSS:
                    namespace[name] = client.exception_class(name, base)
                else:
                    namespace[name] = RemoteType(name, (), {"_remote": Remote(client, {"name": name}, "class")})
            elif kind == "value":
                namespace[name] = wire.decode(info.get("value"), client.resolve)
        except (wire.WireError, RecursionError, AttributeError, TypeError, ValueError):
            continue
    for alias, module in dict(modules or {}).items():
        if str(module) in IMPORTABLE and str(alias).isidentifier() and str(alias) != entry:
            try:
                namespace[str(alias)] = importlib.import_module(str(module))
            except BaseException:
                continue
    return namespace


MAX_ITERATED = 10_000  # items of a returned iterator read for its probe key


def probe_key(value):
    """A key for execution votes: a hash of the value's full canonical form. A value of the program's
    that is not plain data (a generator, a map object, a dict view) is keyed by its contents, read here
    up to MAX_ITERATED items; one that cannot be read so (an instance, a longer iterator) gets a key of
    its own, so that it never votes with another program's object of the same type."""
    if isinstance(value, Remote) and "handle" in value._ref:
        try:
            items = []
            for item in value:
                items.append(item)
                if len(items) > MAX_ITERATED:
                    raise OverflowError
            value = ["<iterated>", value._type, items]
        except (TypeError, RemoteError, OverflowError, AttributeError):
            return "opaque:" + os.urandom(12).hex()
    opaque = []
    table = wire.encode(value, lambda obj: opaque.append(obj) or (0, getattr(type(obj), "__name__", "object")))
    return "opaque:" + os.urandom(12).hex() if opaque else wire.digest(table)


def main():
    to_program, from_program, report_fd = (int(a) for a in sys.argv[1:4])
    _not_dumpable()
    job = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    nonce = job["nonce"].encode()
    limits = job.get("limits") or {}
    sys.path.extend(str(path) for path in job.get("site") or ())  # the packages programs may use (numpy)
    wire.configure(limits.get("memory_bytes"))
    for name, key in (("RLIMIT_AS", "memory_bytes"), ("RLIMIT_CPU", "cpu_seconds")):
        if limits.get(key):
            resource.setrlimit(getattr(resource, name), (int(limits[key]), int(limits[key]) + (1 if name == "RLIMIT_CPU" else 0)))

    def report(**event):
        os.write(report_fd, nonce + b" " + json.dumps(event).encode() + b"\n")

    client = Client(wire.Channel(from_program, to_program), progress=lambda n: report(event="calls", n=n))
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
    exports = job.get("exports")
    namespace = namespace_for(client, hello, None if exports is None else set(exports),
                              str(exports[0]) if exports else None, job.get("modules"))
    seccomp = hello.get("seccomp")
    report(event="program", status="ok", seccomp=seccomp if seccomp is True or seccomp is None else str(seccomp)[:300])
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
            key = probe_key(value)
            try:
                shown = repr(value)[:1000]
            except BaseException:
                shown = f"<{type(value).__name__}>"
            report(event="probe", index=index, key=key, value=shown)
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
