"""Seeing inside a search: a trace of each problem's search (recorder.py), recorded through the
Context every strategy goes through, a self-contained HTML page of a run's traces (page.py) and
selections replayed on a recorded trace (replay.py)."""

from ttscale.tracing.recorder import Trace, read_traces

__all__ = ["Trace", "read_traces"]
