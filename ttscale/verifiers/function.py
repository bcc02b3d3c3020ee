"""A plain Python function as a verifier: `FunctionVerifier(fn)` with fn(problem, text) -> float.

The verifier contract is `async score(problem, trajectories, usage) -> list[Scores]`; most research
code has a function that scores one solution. This wraps it (run in a thread, so a slow function does
not stall the other problems). `check_verifier` is what Strategy runs at construction: a plain
function given as a verifier is refused there, naming this wrapper, instead of failing on the first
problem.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Sequence

from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits


class FunctionVerifier:
    """fn(problem, text) -> float, higher is better; `score_range`: where its values lie (weights
    in votes and particle filtering need [0, 1]). A value that is not a finite number is an error."""

    def __init__(self, fn: Callable[[Problem, str], float], score_range: tuple[float, float] = (0.0, 1.0)):
        if not callable(fn):
            raise TypeError(f"FunctionVerifier needs a function fn(problem, text) -> float, got {fn!r}")
        self.fn = fn
        self.traits = Traits(score_range=tuple(score_range))

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[Scores]:
        values = await asyncio.to_thread(lambda: [self.fn(problem, t.text) for t in trajectories])
        out = []
        for t, value in zip(trajectories, values):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"verifier function {getattr(self.fn, '__name__', self.fn)!r} returned {value!r} "
                                 "for a trajectory; it must return a finite number")
            out.append(Scores(float(value)))
        usage.verifier_calls += len(trajectories)
        return out


def check_verifier(verifier, where: str = "verifier") -> None:
    """Refuse what cannot serve as a verifier, at construction: it needs `async def score(problem,
    trajectories, usage) -> list[Scores]`."""
    if verifier is None:
        return
    score = getattr(verifier, "score", None)
    if score is None:
        hint = (" -- a plain function: wrap it, FunctionVerifier(fn) with fn(problem, text) -> float"
                if callable(verifier) else "")
        raise TypeError(f"{where}={verifier!r} has no `score` method; a verifier needs "
                        f"`async def score(problem, trajectories, usage) -> list[Scores]`{hint}")
    if not inspect.iscoroutinefunction(score):
        raise TypeError(f"{where}: {type(verifier).__name__}.score must be `async def` (it is awaited with many "
                        "problems at once); wrap a plain function with FunctionVerifier(fn)")
