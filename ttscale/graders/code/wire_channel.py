"""One JSON message a line over a pair of file descriptors, between the sandbox's two processes;
a line is at most wire.MAX_MESSAGE bytes (read when each message is made or read: wire.configure sets it).

Standalone on purpose (no ttscale import): the sandbox mounts this file beside wire.py.
"""

import json

import wire

_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # stateless: made once


def dumps(message) -> bytes:
    # one encoder made per call costs more than the rest of a small message's encoding
    data = _ENCODER.encode(message).encode("utf-8", "surrogatepass") + b"\n"
    if len(data) > wire.MAX_MESSAGE:
        raise wire.WireError(f"a message of {len(data)} bytes is over the {wire.MAX_MESSAGE}-byte limit")
    return data


def loads(line: bytes):
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise wire.WireError(f"not a wire message: {type(exc).__name__}") from None


class Channel:
    """One JSON message per line over a pair of file descriptors."""

    def __init__(self, read_fd: int, write_fd: int):
        import os

        self._read = os.fdopen(read_fd, "rb", buffering=1 << 16)
        self._write_fd = write_fd
        self._os_write = os.write

    def send(self, message) -> None:
        self.write(dumps(message))

    def write(self, data: bytes) -> None:
        """Send a message already made by dumps()."""
        view = memoryview(data)
        while view:
            written = self._os_write(self._write_fd, view)
            view = view[written:]

    def receive(self):
        """The next message; EOFError when the other side is gone."""
        line = self._read.readline(wire.MAX_MESSAGE + 1)
        if not line:
            raise EOFError("the other process closed the channel")
        if not line.endswith(b"\n"):
            raise wire.WireError("a message over the size limit, or cut off")
        return loads(line)
