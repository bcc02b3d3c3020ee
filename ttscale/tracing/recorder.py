"""A run's trace file: each problem's trace (ttscale/strategies/trace.py records it through the Context)
as one gzip member of JSON Lines, appended as the problem finishes, and read back member by member."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

TRACE_FILE = "trace.jsonl.gz"


class TraceWriter:
    """Appends problems' traces to a run's trace file as they finish: each problem is one complete gzip
    member, written and flushed at once, so a killed run keeps every finished problem's and a resumed
    run appends after them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")

    def write(self, line: dict) -> None:
        self._handle.write(gzip.compress((json.dumps(line, ensure_ascii=False) + "\n").encode(), 6))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


GZIP_MAGIC = b"\x1f\x8b\x08"


def read_traces(path: str | Path) -> Iterator[dict]:
    """Each problem's trace in the file (a run folder: its trace.jsonl.gz), in the order written. A
    later line for the same problem (a resumed run solved it again) comes after the earlier. A member
    cut short (a run killed while writing) or damaged is skipped: reading goes on at the next member."""
    path = Path(path)
    if path.is_dir():
        path = path / TRACE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no trace at {path}: run with trace=true to record one")
    data = path.read_bytes()
    view, at = memoryview(data), 0
    while at < len(data):
        decompressor, pos, parts = zlib.decompressobj(wbits=31), at, []
        try:  # fed in pieces, so what follows the member is never copied whole
            while not decompressor.eof and pos < len(data):
                piece = view[pos: pos + (1 << 16)]
                pos += len(piece)
                parts.append(decompressor.decompress(piece))
            complete = decompressor.eof
        except zlib.error:
            complete = False
        if not complete:  # cut or damaged: resume at the next member's header
            following = data.find(GZIP_MAGIC, at + 1)
            if following < 0:
                return
            at = following
            continue
        at = pos - len(decompressor.unused_data)
        text = b"".join(parts)
        for line in text.split(b"\n"):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # not a whole line (an older writer's member cut mid-line)
