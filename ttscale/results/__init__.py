"""A run's results: its rows (results.jsonl), its parts' wall times, its summary and the measures the
summary holds (metrics: proportions' intervals; curves: pass@k, maj@k and the field's measures).

Below both the runtime, which writes them, and ttscale.analysis, which reads them: neither of those
imports the other."""

from ttscale.results.parts import close_part, open_part, parts_path, run_wall_seconds
from ttscale.results.rows import RunResult, load_results, pending, unsolved, unavailable
from ttscale.results.summary import format_summary, summarize

__all__ = ["RunResult", "close_part", "format_summary", "load_results", "open_part", "parts_path", "pending",
           "run_wall_seconds", "summarize", "unavailable", "unsolved"]
