"""S*'s selection (Li et al. 2025, "S*: Test Time Scaling for Code Generation"; the authors' code:
NovaSky-AI/SkyThought, skythought/test-time-scaling, `selection_function` with
`generated_tests_tool_assisted`): filter by the visible tests, then adaptive input synthesis and
pairwise judging by the policy model, grounded in execution.

    pass    <- the candidates passing every visible test
               none: the earliest with the largest share passed; one: it
    inputs  <- the inputs of the tests the model writes for the problem (one sample)
    for each input x: group the passing candidates by their output on x (errors and timeouts
               dropped); an input with one group is skipped
        for each pair of groups, each a in one and b in the other: a match of a and b
            the model writes inputs meant to tell a and b apart; both run on them (the sandbox)
            the model judges which program is right from both programs and their outputs, twice
            (the order swapped): a consistent winner scores 1, a consistent tie 0.5 each, else 0
        the group with strictly the most match points: each of its members +1
    choose: the most points, the earliest on ties; all 0: a round robin of code-only judgments
            over the passing candidates (both orders), the most points

As the code, a match depends only on its two programs in the order shown (the code's calls are cached
by their prompt), so each ordered pair is played once; the round robin judges identical programs too. Tests and inputs the model writes are
untrusted code: only literal calls of the function are read (generated.py), the rest counted and
never run. A judgment that names no program is undecided (0 points), counted. Deviations, options:
the test prompts are CodeT's asserts (the code asks for JSON input/output pairs; ttscale's tasks are
functions called on literals); a task without visible tests sends every candidate to the matches
(`no_visible=tournament`; the code scores them all 0 and takes the first: `no_visible=first`). Every
model call is a policy call (usage, budgets); sandbox runs and seconds are in the result's info.
Also unlike the code: outputs are grouped by their value (a canonical hash: 1 and "1" differ; the
code groups by str()); a program's inputs share one sandbox run and its time limit (the code runs each
input in a process of its own, 6 s each); tests are read from one sample, at most tests_per_sample,
and at most distinguishing_tests per match (the code keeps all it parses, retrying a failed call up to
3 times); the visible tests are run again here (the selection composes with any search); tests,
inputs and judgments are the policy model's (the code's default is a separate 4o-mini).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ttscale.graders.code.generated import GeneratedTests, call_of
from ttscale.graders.code.grader import task_of
from ttscale.strategies.context import Context
from ttscale.strategies.select.base import Selection
from ttscale.strategies.select.codet import generate_tests, run_all, sandbox_cost
from ttscale.types import Problem, SamplingParams, Trajectory

INPUTS_PROMPT = """{problem}

Two programs were written for this task:

[Program A]
```python
{a}
```

[Program B]
```python
{b}
```

Write up to {count} test cases for the task, first the ones on which one of the programs is right and \
the other wrong, then edge cases. Write each as one line `assert {entry}(...) == expected`, using \
literal values only, after a line `# tests`."""

JUDGE_PROMPT = """{problem}

Two programs were written for this task{ran}.

{shown}

Which program solves the task correctly? First work out what the task asks for, then check each \
program{against}. End with one line "Answer: 0" if program 0 is correct, "Answer: 1" if program 1 is, \
or "Answer: 2" if both are equally good or equally bad."""

ANSWER = re.compile(r"answer\W{0,3}\s*([012])\b", re.IGNORECASE)
NO_VISIBLE = ("tournament", "first")


def points(forward: int | None, backward: int | None) -> tuple[float, float]:
    """A pair's points from its judgments in both orders (backward: the pair shown swapped): a
    consistent winner 1, a consistent tie 0.5 each, anything else (or an unparsed one) 0."""
    backward = {0: 1, 1: 0, 2: 2}.get(backward)
    if forward is None or forward != backward:
        return (0.0, 0.0)
    return {0: (1.0, 0.0), 1: (0.0, 1.0), 2: (0.5, 0.5)}[forward]


def judgment(text: str) -> int | None:
    """0, 1 or 2 from the judge's last "Answer: N"; None when it names none."""
    found = ANSWER.findall(text or "")
    return int(found[-1]) if found else None


@dataclass
class SStar:
    needs_scores = False
    needs_stats = False
    needs_probability_scores = False
    needs_code = True  # a code dataset's programs and tests (refused on a math dataset before the run)
    needs_context = True  # it calls the model and runs programs: Strategy awaits `choose(problem, ctx, ...)`
    test_samples: int = 1  # the code: one test-writing call for grouping
    tests_per_sample: int = 10
    test_temperature: float = 0.71  # the code: 0.7 + 0.01
    test_top_p: float = 1.0
    test_tokens: int = 1000  # the code leaves dspy's cap, 1000
    distinguishing_tests: int = 5  # test cases asked for in a match
    judge_temperature: float = 0.0  # the code leaves dspy's (greedy)
    judge_tokens: int = 1000
    show_examples: bool = field(default=False, metadata={"config": "test_prompt_examples"})
    # a task without visible tests: tournament (every candidate plays) | first (the code: the first)
    no_visible: str = "tournament"
    max_program_chars: int = 8000  # a longer program is shown cut

    def __post_init__(self) -> None:
        if self.no_visible not in NO_VISIBLE:
            raise ValueError(f"no_visible={self.no_visible!r}; choose one of: {', '.join(NO_VISIBLE)}")
        for key in ("test_samples", "tests_per_sample", "test_tokens", "distinguishing_tests", "judge_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        raise TypeError("s_star calls the model and runs programs: use it inside a Strategy (it awaits choose(...))")

    async def choose(self, problem: Problem, ctx: Context, trajectories: Sequence[Trajectory],
                     groups: Sequence[int | None]) -> Selection:
        programs = [t.answer for t in trajectories]
        pool = [i for i, p in enumerate(programs) if p is not None]
        if not pool:
            return Selection(None, {"reason": "no program to choose"})
        return await _Selection(self, problem, ctx, programs).run(pool)


class _Selection:
    """One problem's selection: its counts and the matches played (a Selection serves many problems
    at once, so nothing of one problem lives on it)."""

    def __init__(self, config: SStar, problem: Problem, ctx: Context, programs: list[str | None]):
        self.config, self.problem, self.ctx, self.programs = config, problem, ctx, programs
        self.task = task_of(problem)
        self.info = {"sandbox_runs": 0, "sandbox_seconds": 0.0, "matches": 0, "judgments": 0, "undecided_judgments": 0}
        # (first program, second program) -> their points, for a match played in that order
        self.matches: dict[tuple[str, str], tuple[float, float]] = {}
        self.judged: dict[tuple[str, str], asyncio.Task] = {}  # code-only judgments, by the order shown

    async def run(self, pool: list[int]) -> Selection:
        passing = await self.filter(pool)
        if isinstance(passing, Selection):
            return passing
        scores = await self.tournament(passing)
        if scores is None:  # the model wrote no test to run: the earliest passing program (the code's)
            return self.selection(passing[0], passing_visible=len(passing), reason="no generated input")
        if not any(scores.values()):
            self.info["fallback"] = "code-only round robin"
            scores = await self.round_robin(passing)
        chosen = max(passing, key=lambda i: (scores[i], -i))
        self.info.update(passing_visible=len(passing), chosen_points=scores[chosen])
        return self.selection(chosen)

    def selection(self, index: int, **facts) -> Selection:
        self.info["sandbox_seconds"] = round(self.info["sandbox_seconds"], 3)
        return Selection(index, {**self.info, **facts})

    def count(self, verdicts) -> None:
        cost = sandbox_cost(verdicts)
        self.info["sandbox_runs"] += cost["sandbox_runs"]
        self.info["sandbox_seconds"] += cost["sandbox_seconds"]

    async def filter(self, pool: list[int]) -> list[int] | Selection:
        """The candidates passing every visible test, or the selection when fewer than two do."""
        visible = self.task.visible_tests
        if not visible:
            if self.config.no_visible == "first":
                return self.selection(pool[0], reason="no visible tests: the first (the code's)")
            return pool
        programs = self.programs
        verdicts = await run_all(self.problem, self.ctx, list(dict.fromkeys(programs[i] for i in pool)), visible)
        self.count(verdicts.values())

        def share(i: int) -> float:
            verdict = verdicts[programs[i]]
            return sum(t.status == "pass" for t in verdict.tests) / len(visible) if verdict else 0.0

        passing = [i for i in pool if share(i) == 1.0]
        if len(passing) > 1:
            return passing
        if passing:
            return self.selection(passing[0], passing_visible=1)
        best = max(pool, key=lambda i: (share(i), -i))
        return self.selection(best, passing_visible=0, reason="none passed the visible tests: the largest share, earliest")

    async def tournament(self, passing: list[int]) -> dict[int, float] | None:
        config, programs = self.config, self.programs
        found = await generate_tests(self.problem, self.ctx, config.test_samples, config.tests_per_sample,
                                     config.test_temperature, config.test_top_p, config.test_tokens,
                                     config.show_examples, "s_star/tests")
        calls = list(dict.fromkeys(c for c in (call_of(t) for t in found.tests) if c is not None))
        self.info.update(generated_inputs=len(calls), dropped_tests=found.dropped)
        scores = {i: 0.0 for i in passing}
        if not calls:
            return None
        verdicts = await run_all(self.problem, self.ctx, list(dict.fromkeys(programs[i] for i in passing)), (), calls)
        self.count(verdicts.values())
        groupings = []
        for k in range(len(calls)):
            by_output: dict[str, list[int]] = {}
            for i in passing:
                verdict = verdicts[programs[i]]
                value = verdict.probes[k] if verdict is not None and k < len(verdict.probes) else None
                if value is not None and not value.startswith("!"):  # errors and timeouts are dropped
                    by_output.setdefault(value, []).append(i)
            if len(by_output) > 1:
                groupings.append(list(by_output.values()))
        self.info["splitting_inputs"] = len(groupings)
        # one match per ordered pair of programs (the code's calls are cached by their prompt, and a pair
        # shown the other way round is another prompt): a from the group whose output came first
        pairs: dict[tuple[str, str], tuple[int, int]] = {}
        for grouping in groupings:
            for g, h in itertools.combinations(grouping, 2):
                for a, b in itertools.product(g, h):
                    pairs.setdefault((programs[a], programs[b]), (a, b))
        await asyncio.gather(*(self.match(a, b) for a, b in pairs.values()))
        for grouping in groupings:
            points = [0.0] * len(grouping)
            for (x, g), (y, h) in itertools.combinations(enumerate(grouping), 2):
                for a, b in itertools.product(g, h):
                    pa, pb = self.matches[programs[a], programs[b]]
                    points[x] += pa
                    points[y] += pb
            top = max(points)
            if points.count(top) == 1:
                for i in grouping[points.index(top)]:
                    scores[i] += 1
        return scores

    async def match(self, a: int, b: int) -> None:
        """A tool-assisted match: inputs the model writes to tell a and b apart, both run, judged twice."""
        config, programs, entry = self.config, self.programs, self.task.entry_point
        prompt = INPUTS_PROMPT.format(problem=self.problem.question.strip(), a=self.shown(programs[a]),
                                      b=self.shown(programs[b]), count=config.distinguishing_tests, entry=entry)
        params = SamplingParams(n=1, temperature=config.test_temperature, top_p=config.test_top_p,
                                max_tokens=config.test_tokens)
        (completion,) = await self.ctx.generate([{"role": "user", "content": prompt}], params, key=f"s_star/inputs/{a}-{b}",
                                                     role="inputs")
        found = GeneratedTests()
        text = completion.text.split("# tests", 1)[-1]
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("```"))
        found.add(text.split("assert ", 1)[1] if "assert " in text else "", entry, config.distinguishing_tests)
        ran = [(t, c) for t, c in ((t, call_of(t)) for t in found.tests) if c]
        self.info["match_inputs"] = self.info.get("match_inputs", 0) + len(ran)
        outputs = {}
        if ran:
            verdicts = await run_all(self.problem, self.ctx, [programs[a], programs[b]], (), [c for _, c in ran])
            self.count(verdicts.values())
            outputs = {p: (v.probe_values if v is not None else []) for p, v in verdicts.items()}
        forward, backward = await asyncio.gather(
            self.judge([programs[a], programs[b]], ran, outputs, f"s_star/judge/{a}-{b}/0"),
            self.judge([programs[b], programs[a]], ran, outputs, f"s_star/judge/{a}-{b}/1"))
        self.info["matches"] += 1
        self.record(programs[a], programs[b], forward, backward)

    def record(self, first: str, second: str, forward: int | None, backward: int | None) -> None:
        """Points of a match judged in both orders: a consistent winner 1, a consistent tie 0.5 each."""
        self.matches[first, second] = points(forward, backward)

    async def judge(self, pair: list[str], ran, outputs, key: str) -> int | None:
        """0 / 1 / 2 for the pair as shown (program 0 first); None when the judge names none."""
        blocks = []
        for k, program in enumerate(pair):
            block = f"[Program {k}]\n```python\n{self.shown(program)}\n```"
            if ran:
                values = outputs.get(program) or []
                lines = [f"{call} -> {values[j] if j < len(values) and values[j] is not None else '(no value)'}"
                         for j, (_, call) in enumerate(ran)]
                block += f"\n[Program {k}: outputs]\n" + "\n".join(lines)
            blocks.append(block)
        if ran:
            written = "\n".join(t for t, _ in ran)
            blocks.append(f"[The tests as written; their expected values may be wrong]\n{written}")
        prompt = JUDGE_PROMPT.format(problem=self.problem.question.strip(), shown="\n\n".join(blocks),
                                     ran=", and both were run on the same inputs" if ran else "",
                                     against=" and its outputs" if ran else "")
        params = SamplingParams(n=1, temperature=self.config.judge_temperature, max_tokens=self.config.judge_tokens)
        (completion,) = await self.ctx.generate([{"role": "user", "content": prompt}], params, key=key, role="judge")
        self.info["judgments"] += 1
        verdict = judgment(completion.text)
        if verdict is None:
            self.info["undecided_judgments"] += 1
        return verdict

    async def round_robin(self, passing: list[int]) -> dict[int, float]:
        """The code's fallback: every pair i < j of passing candidates (identical programs too) judged on
        their code alone, in both orders; a judgment is made once per order shown (the code's cache)."""
        programs = self.programs

        def judged(a: int, b: int) -> asyncio.Task:
            key = (programs[a], programs[b])
            if key not in self.judged:
                self.judged[key] = asyncio.ensure_future(self.judge([programs[a], programs[b]], [], {},
                                                                    f"s_star/code/{a}-{b}"))
            return self.judged[key]

        pairs = list(itertools.combinations(passing, 2))
        verdicts = await asyncio.gather(*(asyncio.gather(judged(a, b), judged(b, a)) for a, b in pairs))
        scores = {i: 0.0 for i in passing}
        for (a, b), (forward, backward) in zip(pairs, verdicts):
            pa, pb = points(forward, backward)
            scores[a] += pa
            scores[b] += pb
        return scores

    def shown(self, program: str) -> str:
        text = program.rstrip()
        limit = self.config.max_program_chars
        return text if len(text) <= limit else text[:limit] + "\n# ... (cut)"


METHODS = {"s_star": SStar}  # strategy.select=s_star
