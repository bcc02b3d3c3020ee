"""Unit tests as a verifier: a program's score is the share of the problem's visible tests it passes
in the sandbox. Selecting with visible tests and grading with all of them measures the false
positives of an imperfect verifier ("Inference Scaling fLaws", Stroebl et al. 2024).
tests="all" scores with every test: an oracle, for coverage studies only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits


class UnitTests:
    traits = Traits()  # scores in [0, 1]

    def __init__(self, grader, tests: str = "visible"):
        """grader: the run's CodeGrader (None only to check a config without running it)."""
        if grader is not None and not hasattr(grader, "run_tests"):
            raise ValueError("name=unit_tests needs a code dataset (dataset.format=humaneval or mbpp)")
        if tests not in ("visible", "all"):
            raise ValueError(f"tests={tests!r}; choose one of: visible, all")
        self.grader = grader
        self.tests = tests

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage | None = None) -> list[Scores]:
        programs = [t.answer if t.answer is not None else self.grader.extract(t.text, problem) for t in trajectories]
        unique = list(dict.fromkeys(p for p in programs if p is not None))
        verdicts = await asyncio.gather(*(self.grader.run_tests(p, problem, self.tests) for p in unique))
        share = {}
        for program, verdict in zip(unique, verdicts):
            passed = sum(t.status == "pass" for t in verdict.tests)
            share[program] = passed / len(verdict.tests) if verdict.tests else float(verdict.passed)
        if usage is not None:
            usage.verifier_calls += len(unique)
        return [Scores(share.get(p, 0.0)) for p in programs]
