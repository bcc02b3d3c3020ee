"""Grade code by running it: a candidate is correct when every test of its problem passes in the
sandbox. Also extraction (completion -> program), grouping for votes (by program, or by the outputs
on the visible tests' inputs: execution-based voting) and runs of the visible tests for selection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ttscale.graders.code.extract import extract_code, normalized
from ttscale.graders.code.sandbox import Limits, Sandbox, Verdict
from ttscale.graders.code.tasks import CodeTask
from ttscale.types import Problem, Result

GROUPINGS = ("program", "outputs")


def runnable(task: CodeTask, program: str) -> str:
    """The program as the sandbox loads it: as written, or inside the stdio harness (stdio.py)."""
    if task.harness == "stdio":
        from ttscale.graders.code.stdio import wrap

        return wrap(program)
    if task.harness:
        raise ValueError(f"unknown harness {task.harness!r}")
    return program


def task_of(problem: Problem) -> CodeTask:
    try:
        return CodeTask.from_metadata(problem.metadata)
    except ValueError as exc:
        raise ValueError(f"problem {problem.id!r}: {exc}") from None


class CodeGrader:
    """grouping: "program" (identical programs up to formatting and comments vote together) or
    "outputs" (programs vote together when they give the same values on the visible tests' inputs)."""

    def __init__(self, sandbox: Sandbox | None = None, grouping: str = "program"):
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping={grouping!r}; choose one of: {', '.join(GROUPINGS)}")
        self.sandbox = sandbox or Sandbox()
        self.grouping = grouping

    # -- the grader contract (see ttscale.graders.math.MathGrader) ----------------------------------
    def extract(self, text: str | None, problem: Problem | None = None, finished: bool = True) -> str | None:
        task = task_of(problem) if problem is not None else None
        entry = task.entry_point if task and not task.harness else None  # a stdio program defines no function
        return extract_code(text, task.prompt if task else "", entry)

    async def agroup(self, answers: Sequence[str | None], problem: Problem | None = None) -> list[int | None]:
        if self.grouping == "outputs" and problem is not None and task_of(problem).probes:
            keys = await asyncio.gather(*(self._behaviour(a, task_of(problem)) for a in answers))
        else:
            keys = [None if a is None else normalized(a) for a in answers]
        seen: dict[object, int] = {}
        return [None if k is None else seen.setdefault(k, len(seen)) for k in keys]

    async def _behaviour(self, program: str | None, task: CodeTask) -> tuple | None:
        if program is None:
            return None
        verdict = await asyncio.to_thread(self.sandbox.run, runnable(task, program), (), task.setup, None, task.probes,
                                          task.program_setup, task.exports)
        if all(value is None for value in verdict.probes):
            return None  # did not load, or ran out of time before any value: no vote
        return tuple(verdict.probes)

    async def run_tests(self, program: str | None, problem: Problem, which: str = "all") -> Verdict | None:
        """Run the problem's tests ("all" or "visible") against a program; None for no program."""
        if program is None:
            return None
        task = task_of(problem)
        tests = task.tests if which == "all" else task.visible_tests
        return await asyncio.to_thread(self.sandbox.run, runnable(task, program), tests, task.setup, None, (), task.program_setup,
                                       task.exports)

    async def run_cases(self, program: str | None, problem: Problem, tests: Sequence[str] = (),
                        probes: Sequence[str] = ()) -> Verdict | None:
        """Run tests and probes other than the task's (a selection's: model-written tests, inputs)
        against a program, in the sandbox, with the task's setup; None for no program."""
        if program is None:
            return None
        task = task_of(problem)
        return await asyncio.to_thread(self.sandbox.run, runnable(task, program), tuple(tests), task.setup, None, tuple(probes),
                                       task.program_setup, task.exports)

    async def agrade(self, result: Result, problem: Problem) -> None:
        """Every distinct candidate program runs against all tests once; the chosen answer is correct
        when its program passes. Each candidate keeps its verdict (status, per-test outcomes, stderr tail)."""
        result.reference = problem.answer
        programs = list(dict.fromkeys([c.answer for c in result.candidates if c.answer is not None]
                                      + ([result.answer] if result.answer is not None else [])))
        verdicts = await asyncio.gather(*(self.run_tests(p, problem) for p in programs))
        by_program = dict(zip(programs, verdicts))
        task = task_of(problem)
        visible = task.visible
        shown: dict[str, Verdict | None] = {}
        if task.examples:  # the visible tests are the task's examples: a run of their own (they do not grade)
            candidates = list(dict.fromkeys(c.answer for c in result.candidates if c.answer is not None))
            shown = dict(zip(candidates, await asyncio.gather(*(self.run_tests(p, problem, "visible")
                                                                 for p in candidates))))
        for candidate in result.candidates:
            verdict = by_program.get(candidate.answer)
            candidate.correct = bool(verdict and verdict.passed)
            candidate.verdict = _summary(verdict)
            # whether the visible tests alone would have accepted it
            if task.examples:
                seen = shown.get(candidate.answer)
                candidate.verdict["visible"] = bool(seen and seen.passed)
            else:  # a subset of all the tests
                candidate.verdict["visible"] = bool(verdict and visible and all(verdict.tests[i].status == "pass"
                                                                                for i in visible))
        chosen = by_program.get(result.answer)
        result.correct = bool(chosen and chosen.passed)

    def stats(self) -> dict:
        """How programs ran (for summaries): isolation, whether as root, cgroups."""
        return {"sandbox": self.sandbox.describe()}

    def close(self) -> None:
        pass

    def __enter__(self) -> CodeGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _summary(verdict: Verdict | None) -> dict | None:
    """What a result line keeps of a verdict: status, reason, per-test status, stderr tail."""
    if verdict is None:
        return {"status": "error", "reason": "no code extracted"}
    out = {"status": verdict.status, "tests": [t.status for t in verdict.tests], "seconds": round(verdict.seconds, 3)}
    if verdict.reason:
        out["reason"] = verdict.reason
    errors = sorted({t.error for t in verdict.tests if t.error})
    if errors:
        out["errors"] = errors[:3]
    if verdict.stderr:
        out["stderr"] = verdict.stderr[-500:]
    return out


def code_grader(isolation: str = "auto", timeout: float = 10.0, memory_mb: int = 1024, parallel: int | None = None,
                grouping: str = "program", allow_root: bool = False, packages: Sequence[str] | None = None) -> CodeGrader:
    limits = Limits(timeout=timeout, cpu_seconds=max(1, int(timeout)), memory_mb=memory_mb)
    return CodeGrader(Sandbox(isolation, limits, parallel, allow_root=allow_root, packages=packages), grouping)
