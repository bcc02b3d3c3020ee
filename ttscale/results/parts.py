"""A run's parts: each run into a results file (the first, and every resume) records when it started
and how long it took, so the run's wall time adds up over its parts, a killed part's from its
results' finish times."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from ttscale.types import Result


def parts_path(results_path: Path) -> Path:
    return results_path.with_name(results_path.stem + ".parts.jsonl")


def open_part(results_path: Path, earlier: Sequence[Result]) -> int:
    """Record that a part of the run starts now (its number): its wall time is known even if it is
    killed (from its results' finish times). A run resumed from before parts were kept gets its first
    part from its summary.json's wall time, or else its longest problem's own time (marked estimated)."""
    path = parts_path(results_path)
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    new = []
    if not lines and earlier:
        summary = results_path.parent / "summary.json"
        wall = None
        if summary.exists():
            try:
                wall = json.loads(summary.read_text()).get("wall_seconds")
            except ValueError:
                wall = None
        new.append({"part": 0, "wall_seconds": float(wall) if wall else max(r.usage.wall_seconds for r in earlier),
                    "solved": len(earlier), **({} if wall else {"estimated": True})})
    number = 1 + max((line.get("part", 0) for line in lines + new), default=-1)
    new.append({"part": number, "started": time.time()})
    with open(path, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in new)
    return number


def close_part(results_path: Path, number: int, wall: float, solved: int) -> None:
    with open(parts_path(results_path), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"part": number, "wall_seconds": wall, "solved": solved}) + "\n")


def run_wall_seconds(results_path: Path) -> float | None:
    """The wall time of every part of the run whose results are at `results_path` (None when no part
    was recorded). A part that never closed (the run was killed) lasted until its last result."""
    path = parts_path(results_path)
    if not path.exists():
        return None
    parts: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            parts.setdefault(entry.get("part", len(parts)), {}).update(entry)
    finished = []
    if results_path.exists():
        for line in results_path.read_text(errors="replace").splitlines():
            try:
                stamp = json.loads(line).get("info", {}).get("finished_at")
            except ValueError:
                continue
            if stamp is not None:
                finished.append(float(stamp))
    starts = sorted(p["started"] for p in parts.values() if "started" in p)
    total = 0.0
    for part in parts.values():
        if "wall_seconds" in part:
            total += float(part["wall_seconds"])
        elif "started" in part:  # killed: until its last result, before the next part started
            later = [s for s in starts if s > part["started"]]
            end = later[0] if later else float("inf")
            own = [t for t in finished if part["started"] <= t < end]
            total += (max(own) - part["started"]) if own else 0.0
    return total
