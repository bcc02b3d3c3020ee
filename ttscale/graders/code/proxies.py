"""The program's functions, classes and returned objects as proxies in the tests' process.

Standalone on purpose (no ttscale import): the sandbox mounts this file beside test_runner.py, which
imports it. A proxy's call, attribute, item or iteration is a request over the pipe to the program's
process (wire.py carries plain data only); what comes back is built here, by this process's own types.
"""

import builtins
import os

import wire
import wire_tables

NEVER_CROSS = ("StopIteration", "StopAsyncIteration", "GeneratorExit")


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
                wire_tables.update_in_place(args, wire.decode(reply["args"], self.resolve))
                new_pairs = wire.decode(reply["kwargs"], self.resolve)
                for (_, old), (_, new) in zip(pairs, new_pairs):
                    wire_tables.update_in_place(old, new)
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
    return "opaque:" + os.urandom(12).hex() if opaque else wire_tables.digest(table)
