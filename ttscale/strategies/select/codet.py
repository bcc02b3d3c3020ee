"""CodeT (Chen et al. 2022, "CodeT: Code Generation with Generated Tests"; the authors' code:
microsoft/CodeT, src/agreement.py and src/postprocess.py): the policy model writes test cases, every
candidate program runs on every test, and programs are ranked by dual execution agreement.

    tests    <- test_samples completions of CodeT's test prompt (generated.prompt_for_tests), the first
                tests_per_sample asserts of each; a test written by several samples counts that often
    for each program x: S(x) = the tests x passes (in the sandbox)
    consensus sets: programs with the same S, with their samples' counts
    score(set) = |tests in S| x sqrt(|programs in the set|)      (the code; the paper: x |programs|)
    choose: a program of the best-scoring set (the first sampled of it)

As the code, a program counts once per sample that wrote it and a test once per sample that wrote it,
and only passed (program, test) pairs make sets: a program that passes no test is in no set. Tests
are the model's untrusted code: only literal `assert f(args) == value` tests are read (generated.py),
the rest is counted and never run; a test whose run could not finish (a timeout) is undecided,
counted, never a pass. Every test-writing call is a policy call (usage, compute budgets); sandbox runs
and their seconds are counted in the result's info.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ttscale.graders.code.generated import STOP, GeneratedTests, prompt_for_tests
from ttscale.graders.code.grader import task_of
from ttscale.strategies.context import Context
from ttscale.strategies.select.base import Selection
from ttscale.types import Problem, SamplingParams, Trajectory

WEIGHTS = ("sqrt", "linear")


async def generate_tests(problem: Problem, ctx: Context, samples: int, per_sample: int, temperature: float,
                         top_p: float, max_tokens: int, show_examples: bool, key: str) -> GeneratedTests:
    """`samples` completions of CodeT's test prompt, read into tests (one call: the backend batches)."""
    task = task_of(problem)
    params = SamplingParams(n=samples, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=list(STOP))
    completions = await ctx.generate(prompt_for_tests(task, show_examples), params, key=key, role="tests")
    found = GeneratedTests()
    for c in completions:
        found.add(c.text, task.entry_point, per_sample)
    return found


async def run_all(problem: Problem, ctx: Context, programs: Sequence[str], tests: Sequence[str] = (),
                  probes: Sequence[str] = ()) -> dict:
    """Each distinct program once, on every test and probe, in the sandbox (at once: the sandbox's
    slots bound them)."""
    verdicts = await asyncio.gather(*(ctx.grader.run_cases(p, problem, tests, probes) for p in programs))
    return dict(zip(programs, verdicts))


def sandbox_cost(verdicts) -> dict[str, float]:
    runs = [v for v in verdicts if v is not None]
    return {"sandbox_runs": len(runs), "sandbox_seconds": round(sum(v.seconds for v in runs), 3)}


@dataclass
class CodeT:
    needs_scores = False
    needs_stats = False
    needs_probability_scores = False
    needs_code = True  # a code dataset's programs and tests (refused on a math dataset before the run)
    needs_context = True  # it calls the model and runs programs: Strategy awaits `choose(problem, ctx, ...)`
    test_samples: int = 100  # the code's num100 test samples
    tests_per_sample: int = 5  # the code's --test_case_limit
    test_temperature: float = 0.8  # the code's (temp0.8, topp0.95)
    test_top_p: float = 0.95
    test_tokens: int = 300  # the code's max300
    # whether the test prompt keeps the docstring's examples (the authors' prompts drop them)
    show_examples: bool = field(default=False, metadata={"config": "test_prompt_examples"})
    # sqrt (the code: |tests| x sqrt(|programs|)) | linear (the paper: |tests| x |programs|)
    solution_weight: str = "sqrt"
    # when no program passes any test: first (the first sampled program) | none (no answer)
    no_agreement: str = "first"

    def __post_init__(self) -> None:
        if self.solution_weight not in WEIGHTS:
            raise ValueError(f"solution_weight={self.solution_weight!r}; choose one of: {', '.join(WEIGHTS)}")
        if self.no_agreement not in ("first", "none"):
            raise ValueError(f"no_agreement={self.no_agreement!r}; choose one of: first, none")
        for key in ("test_samples", "tests_per_sample", "test_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        raise TypeError("codet writes tests with the model: use it inside a Strategy (it awaits choose(problem, ctx, ...))")

    async def choose(self, problem: Problem, ctx: Context, trajectories: Sequence[Trajectory],
                     groups: Sequence[int | None]) -> Selection:
        programs = [t.answer for t in trajectories]
        unique = list(dict.fromkeys(p for p in programs if p is not None))
        if not unique:
            return Selection(None, {"reason": "no program to choose"})
        found = await generate_tests(problem, ctx, self.test_samples, self.tests_per_sample, self.test_temperature,
                                     self.test_top_p, self.test_tokens, self.show_examples, "codet/tests")
        tests = found.tests
        info = {"generated_tests": len(tests), "dropped_tests": found.dropped, "test_samples": found.samples}
        verdicts = await run_all(problem, ctx, unique, tests) if tests else {}
        info.update(sandbox_cost(verdicts.values()))
        passed, undecided = {}, 0
        for program, verdict in verdicts.items():
            statuses = [t.status for t in verdict.tests] if verdict is not None else []
            statuses += ["timeout"] * (len(tests) - len(statuses))  # tests the run never reached
            undecided += sum(s == "timeout" for s in statuses)
            passed[program] = frozenset(i for i, s in enumerate(statuses) if s == "pass")
        info["undecided_test_runs"] = undecided
        sets: dict[frozenset, list[int]] = {}
        for index, program in enumerate(programs):
            if program is not None and passed.get(program):
                sets.setdefault(passed[program], []).append(index)
        if not sets:
            info["reason"] = "no program passed a generated test"
            if self.no_agreement == "none":
                return Selection(None, info)
            first = next(i for i, p in enumerate(programs) if p is not None)
            return Selection(first, info)
        counts = found.counts

        def score(case_set: frozenset, members: list[int]) -> float:
            weight = math.sqrt(len(members)) if self.solution_weight == "sqrt" else float(len(members))
            return sum(counts[tests[i]] for i in case_set) * weight

        ranked = sorted(sets.items(), key=lambda item: -score(*item))  # stable: ties keep the first sampled
        best_set, members = ranked[0]
        info.update({"consensus_sets": len(sets), "chosen_set_programs": len(members),
                     "chosen_set_tests": len(best_set), "chosen_score": score(best_set, members)})
        return Selection(members[0], info)


METHODS = {"codet": CodeT}  # strategy.select=codet
