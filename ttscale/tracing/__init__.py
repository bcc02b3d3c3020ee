"""Seeing inside a search: a run's trace file (recorder.py; each problem's trace is recorded through the
Context by ttscale/strategies/trace.py, below this package), a self-contained HTML page of a run's
traces (page.py) and selections replayed on a recorded trace (replay.py)."""

from ttscale.strategies.trace import Trace
from ttscale.tracing.recorder import read_traces

__all__ = ["Trace", "read_traces"]
