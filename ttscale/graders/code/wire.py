"""Plain data over a pipe, between the program's process and the tests' process.

Standalone on purpose (no ttscale import): the sandbox mounts this file beside its two scripts.

`encode` turns a value into JSON-able data: None, bool, int, float (nan and infinities too), complex,
str, bytes, bytearray, list, tuple, dict, set, frozenset, range, Fraction and Decimal, at any nesting;
subclasses of these become their base type (an `int` subclass with `__eq__` always True is sent as
its integer); numpy scalars and arrays become Python numbers and lists. Anything else becomes a
*handle* (`register` decides what it refers to). `decode` builds only those plain types back — never
an object of the sender's making — so whatever the program does to its own interpreter, the tests'
process compares plain values with its own, unpatched operators.
"""

import json
from decimal import Decimal
from fractions import Fraction

MAX_MESSAGE = 64 << 20  # bytes in one message line
_SMALL_INT = 1 << 62


class WireError(Exception):
    """A message that is not plain data (or too large, too deep)."""


def encode(value, register):
    """JSON-able form of `value`; `register(obj) -> int` gives handles for what is not plain data."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        number = int.__index__(value)
        return number if -_SMALL_INT < number < _SMALL_INT else {"$": "int", "v": hex(number)}
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, float):
        number = float.__float__(value)
        if number != number or number in (float("inf"), float("-inf")):
            return {"$": "float", "v": repr(number)}
        return number
    if isinstance(value, complex):
        number = complex(complex.real.__get__(value), complex.imag.__get__(value))
        return {"$": "complex", "v": [encode(number.real, register), encode(number.imag, register)]}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return {"$": "bytes" if isinstance(value, bytes) else "bytearray", "v": bytes(value).hex()}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [encode(v, register) for v in tuple.__iter__(value)]}
    if isinstance(value, list):
        return [encode(v, register) for v in list.__iter__(value)]
    if isinstance(value, dict):
        return {"$": "dict", "v": [[encode(k, register), encode(v, register)] for k, v in dict.items(value)]}
    if isinstance(value, (set, frozenset)):
        return {"$": "set" if isinstance(value, set) else "frozenset",
                "v": [encode(v, register) for v in (set.__iter__ if isinstance(value, set) else frozenset.__iter__)(value)]}
    if kind is range:
        return {"$": "range", "v": [value.start, value.stop, value.step]}
    if kind is Fraction:
        return {"$": "fraction", "v": [encode(value.numerator, register), encode(value.denominator, register)]}
    if kind is Decimal:
        return {"$": "decimal", "v": str(value)}
    if getattr(kind, "__module__", "") == "numpy" and hasattr(value, "tolist"):
        return encode(value.tolist(), register)
    return {"$": "handle", "id": register(value), "type": getattr(kind, "__name__", "object")[:100]}


def dumps(message) -> bytes:
    data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode() + b"\n"
    if len(data) > MAX_MESSAGE:
        raise WireError(f"a message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    return data


def loads(line: bytes):
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not a wire message: {type(exc).__name__}") from None


def decode(data, resolve):
    """Plain values from `encode`'s output; `resolve(id, type_name)` turns a handle into an object."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(v, resolve) for v in data]
    if type(data) is not dict:
        raise WireError(f"unexpected {type(data).__name__} on the wire")
    tag, body = data.get("$"), data.get("v")
    try:
        if tag == "int":
            return int(body, 16)
        if tag == "float":
            return float(body)
        if tag == "complex":
            return complex(decode(body[0], resolve), decode(body[1], resolve))
        if tag in ("bytes", "bytearray"):
            raw = bytes.fromhex(body)
            return raw if tag == "bytes" else bytearray(raw)
        if tag == "tuple":
            return tuple(decode(v, resolve) for v in body)
        if tag == "dict":
            return {decode(k, resolve): decode(v, resolve) for k, v in body}
        if tag == "set":
            return {decode(v, resolve) for v in body}
        if tag == "frozenset":
            return frozenset(decode(v, resolve) for v in body)
        if tag == "range":
            return range(*(int(x) for x in body))
        if tag == "fraction":
            return Fraction(decode(body[0], resolve), decode(body[1], resolve))
        if tag == "decimal":
            return Decimal(str(body))
        if tag == "handle":
            return resolve(int(data["id"]), str(data.get("type", "object")))
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, ArithmeticError, RecursionError) as exc:
        raise WireError(f"malformed {tag!r} value: {type(exc).__name__}") from None
    raise WireError(f"unknown wire tag {tag!r}")


class Channel:
    """One JSON message per line over a pair of file descriptors."""

    def __init__(self, read_fd: int, write_fd: int):
        import os

        self._read = os.fdopen(read_fd, "rb", buffering=1 << 16)
        self._write_fd = write_fd
        self._os_write = os.write

    def send(self, message) -> None:
        data = dumps(message)
        view = memoryview(data)
        while view:
            written = self._os_write(self._write_fd, view)
            view = view[written:]

    def receive(self):
        """The next message; EOFError when the other side is gone."""
        line = self._read.readline(MAX_MESSAGE + 1)
        if not line:
            raise EOFError("the other process closed the channel")
        if not line.endswith(b"\n"):
            raise WireError("a message over the size limit, or cut off")
        return loads(line)
