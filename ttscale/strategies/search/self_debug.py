"""Self-debugging as a sequential search (Chen et al. 2023, "Teaching Large Language Models to
Self-Debug", its unit-test feedback; rounds as S* runs them: Li et al. 2025, NovaSky-AI/SkyThought,
skythought/test-time-scaling, `CodeGeneratorWithSelfDebug`).

    for each of n chains (all at once):
        program_0 <- the problem's prompt
        for r = 1 .. rounds - 1:
            run program_{r-1} on the task's visible tests (the sandbox)
            if it passes them all: stop                          (S*'s decision "exit")
            program_r <- the problem, then each earlier round's code and its test results
                         (context="all"; "last": only the latest round's), then the request to fix it
        the chain's candidate: its last program, scored by the share of visible tests it passes
    select: any selection; the default best_score takes the earliest chain with the best share
            (S*'s `first`, its selection before tests are generated)

Test results list every visible test with its outcome, as S* lists every public test: passed (with
the value returned), the value the call returned, the error it raised, or that it did not finish.
Each round shows its reasoning (the reply without its code, S*'s "[Round r Reasoning]"), its code and
its results. The history is one user message that grows, as S* builds it (not a chat of many turns).
Unlike the code: the temperature is fixed (the code adds 0.0001 per call), and max_tokens is the
run's (the code: dspy's 1000). Deviation: a task without visible
tests gets no repair rounds (there is nothing to repair against; S* would repeat rounds without
feedback). Every repair is a policy call (usage, budgets); sandbox runs and seconds are in the info.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace

from ttscale.graders.code.feedback import Feedback, run_visible
from ttscale.graders.code.grader import task_of
from ttscale.strategies.context import Context
from ttscale.types import Problem, SamplingParams, Trajectory

def reasoning_of(text: str) -> str:
    """A reply without its fenced code blocks: the reasoning S* shows beside each round's code."""
    return re.sub(r"```[^\n]*\n.*?(?:```|\Z)", "", text or "", flags=re.DOTALL).strip()


REPAIR = ("Above are your attempts at this task so far, each with its results on the example tests. Work out "
          "why the latest attempt fails, then write the whole corrected function in one ```python code block.")
CONTEXTS = ("all", "last")


@dataclass
class SelfDebug:
    needs_code = True  # it runs programs on the task's visible tests (refused on a math dataset)
    scores_trajectories = True  # each candidate's score: the share of visible tests it passes
    n: int = 8  # chains (S* samples 16)
    # programs per chain at most: the first and rounds - 1 repairs (S*'s num_round 3)
    rounds: int = field(default=3, metadata={"config": "debug_rounds"})
    # all (S*'s default: every earlier round) | last (the latest round only)
    context: str = field(default="all", metadata={"config": "repair_context"})
    params: SamplingParams = SamplingParams()
    repair_prompt: str | None = None  # None: REPAIR

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"debug_rounds={self.rounds}: at least 1 (the first program; 1 repairs nothing)")
        if self.context not in CONTEXTS:
            raise ValueError(f"repair_context={self.context!r}; choose one of: {', '.join(CONTEXTS)}")
        self.repair_prompt = self.repair_prompt or REPAIR

    def history(self, attempts: list[tuple[str, str | None, Feedback]]) -> str:
        """Each shown round: its reasoning (the reply without its code), its code, its test results."""
        shown = attempts if self.context == "all" else attempts[-1:]
        first = len(attempts) - len(shown)
        blocks = []
        for r, (reasoning, program, feedback) in enumerate(shown, start=first):
            code = program if program is not None else "(no code was found in the answer)"
            thought = f"[Attempt {r + 1}: reasoning]\n{reasoning}\n\n" if reasoning else ""
            blocks.append(f"{thought}[Attempt {r + 1}: code]\n```python\n{code.rstrip()}\n```\n\n"
                          f"[Attempt {r + 1}: results on the example tests]\n{feedback.report()}")
        return "\n\n".join(blocks)

    def repair_messages(self, base, attempts):
        """The problem's prompt with the history and the request appended to its last user message."""
        extra = f"\n\n{self.history(attempts)}\n\n{self.repair_prompt}"
        if isinstance(base, str):
            return base + extra
        messages = [dict(m) for m in base]
        last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        messages[last]["content"] = str(messages[last]["content"]) + extra
        return messages

    async def _chain(self, index: int, problem: Problem, ctx: Context, tests: tuple[str, ...]) -> tuple[Trajectory, dict]:
        params = replace(self.params, n=1)
        attempts: list[tuple[str, str | None, Feedback]] = []
        (completion,) = await ctx.generate(ctx.prompt, params, key=f"chain{index}/round0")
        runs, seconds = 0, 0.0
        for round_ in range(1, self.rounds + 1):
            program = ctx.grader.extract(completion.text, problem)
            if not tests:
                feedback = None
                break
            feedback = await run_visible(ctx.grader, program, problem, tests)
            runs, seconds = runs + (program is not None), seconds + feedback.seconds
            attempts.append((reasoning_of(completion.text), program, feedback))
            if feedback.passed or round_ == self.rounds:
                break
            (completion,) = await ctx.generate(self.repair_messages(ctx.prompt, attempts), params,
                                               key=f"chain{index}/round{round_}")
        trajectory = Trajectory.from_completion(completion)
        trajectory.answer = program
        trajectory.score = feedback.share(len(tests)) if feedback is not None else 0.0
        return trajectory, {"programs": len(attempts) or 1, "passed": bool(feedback and feedback.passed),
                            "sandbox_runs": runs, "sandbox_seconds": seconds,
                            "undecided": sum(f.undecided for _, _, f in attempts)}

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        tests = task_of(problem).visible_tests
        chains = await asyncio.gather(*(self._chain(i, problem, ctx, tests) for i in range(self.n)))
        facts = [f for _, f in chains]
        ctx.info.update(chains=self.n, rounds=self.rounds, context=self.context, visible_tests=len(tests),
                        programs_per_chain=[f["programs"] for f in facts],
                        chains_passing_visible=sum(f["passed"] for f in facts),
                        sandbox_runs=sum(f["sandbox_runs"] for f in facts),
                        sandbox_seconds=round(sum(f["sandbox_seconds"] for f in facts), 3),
                        undecided_runs=sum(f["undecided"] for f in facts))
        return [t for t, _ in chains]


METHODS = {"self_debug": SelfDebug}  # strategy.search=self_debug
