"""`ttscale trace RUN_DIR`: one self-contained HTML page of a run's traces (no server, no network).

The page holds an index of the run's problems (correct, answer, tokens, seconds, method, nodes) and each
problem's trace compressed (gzip, base64): a problem is decoded and drawn only when its row is opened,
so a large run's page loads at once. The script and styles (viewer.js, viewer.css) are inlined.
"""

from __future__ import annotations

import base64
import gzip
import json
from importlib import resources
from pathlib import Path

from ttscale.tracing.recorder import TRACE_FILE, read_traces

PAGE_FILE = "trace.html"


def _inline_json(value) -> str:
    """JSON that is safe inside a <script> element: every "<" (in strings only: JSON has none elsewhere)
    escaped, so no "</script>" or "<!--" in model text can end or change the element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def latest(traces) -> list[dict]:
    """One trace per problem (and per second pass): the last recorded, in first-seen order."""
    kept: dict[tuple, dict] = {}
    for trace in traces:
        kept[(trace["problem"], bool(trace.get("second_pass")))] = trace
    return list(kept.values())


def index_row(trace: dict) -> dict:
    usage = trace.get("usage") or {}
    return {"problem": trace["problem"], "method": trace.get("method"), "correct": trace.get("correct"),
            "answer": trace.get("answer"), "reference": trace.get("reference"), "error": trace.get("error"),
            "tokens": usage.get("completion_tokens", 0), "seconds": trace.get("seconds"),
            "nodes": len(trace.get("nodes", [])) + len(trace.get("samples", [])),
            "second_pass": bool(trace.get("second_pass"))}


def render(traces: list[dict], name: str) -> str:
    asset = resources.files("ttscale.tracing")
    script, style = (asset / "viewer.js").read_text(), (asset / "viewer.css").read_text()
    blobs = [base64.b64encode(gzip.compress(json.dumps(t, ensure_ascii=False).encode(), 6)).decode() for t in traces]
    run = {"name": name, "methods": sorted({str(t.get("method")) for t in traces})}
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ttscale trace: {_escape(name)}</title>", f"<style>{style}</style></head><body>",
        f"<h1>ttscale trace: {_escape(name)}</h1>", '<div id="summary"></div>',
        '<div id="problems-box"><table id="problems"><thead><tr><th>problem</th><th>correct</th><th>answer</th>'
        "<th>reference</th><th>method</th><th>tokens</th><th>seconds</th><th>nodes</th></tr></thead>"
        "<tbody></tbody></table></div>", '<div id="view"></div>',
        f'<script id="index" type="application/json">{_inline_json([index_row(t) for t in traces])}</script>',
        f'<script id="run" type="application/json">{_inline_json(run)}</script>',
        f"<script>const BLOBS = {json.dumps(blobs)};</script>", f"<script>{script}</script>", "</body></html>", ""])


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_page(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """The page of the run in `run_dir` (its trace.jsonl.gz), written to `out` (default: RUN_DIR/trace.html)."""
    run_dir = Path(run_dir)
    traces = latest(read_traces(run_dir / TRACE_FILE if run_dir.is_dir() else run_dir))
    if not traces:
        raise ValueError(f"{run_dir}: the trace holds no finished problem")
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    out = Path(out) if out is not None else folder / PAGE_FILE
    out.write_text(render(traces, folder.name), encoding="utf-8")
    return out
