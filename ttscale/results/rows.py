"""A run's rows: results.jsonl read back (a killed write's partial line cut off), and which problems a
run into it has left to solve."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttscale.backends.base import BackendUnavailable
from ttscale.types import Problem, Result


@dataclass
class RunResult:
    """What `ttscale.run` returns: every problem's result, in the problems' order, and the run's summary
    (ttscale.results.summary). As a table: `ttscale.results_frame(outcome.results)`."""

    results: list[Result]
    summary: dict[str, Any] = field(default_factory=dict)


def load_results(path: Path) -> dict[str, Result]:
    """Finished results by problem id. A partial last line (a killed write) is cut off the file."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        path.write_bytes(raw)
    done = {}
    for number, line in enumerate(raw.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = Result.from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a ttscale result line ({exc})") from None
        done[result.problem_id] = result
    return done


def pending(problems: Sequence[Problem], output: str | Path | None, retry_errors: bool = True) -> list[Problem]:
    """The problems a run into `output` would solve: those not in it yet, those that failed because no
    server answered, and (retry_errors) those that errored."""
    return unsolved(problems, load_results(Path(output)) if output is not None else {}, retry_errors)


def unsolved(problems: Sequence[Problem], done: dict[str, Result], retry_errors: bool) -> list[Problem]:
    return [p for p in problems if p.id not in done or unavailable(done[p.id])
            or (retry_errors and done[p.id].error is not None)]


def unavailable(result: Result) -> bool:
    """Whether a recorded problem failed only because no server answered (to be solved again). Lines
    written before results carried `error_type` are recognised by their error text."""
    if result.error_type is not None:
        return result.error_type == BackendUnavailable.__name__
    return result.error is not None and f"{BackendUnavailable.__name__}:" in result.error
