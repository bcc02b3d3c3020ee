"""Recursive self-aggregation (RSA; Venkatraman et al. 2025, arXiv 2509.26626; the authors' code:
HyperPotatoNeo/RSA, eval_loop.py): a population of solutions improved by the model itself.

    P_1 <- N samples of the problem
    for t = 2 .. T (loops):
        for each of N new members (all at once):
            S <- K members of P_{t-1}, drawn uniformly without replacement
            the member <- one sample of the aggregation prompt: the problem, then the K solutions
                          (K = 1: a refinement prompt instead), asking for one improved solution
    return P_T (the selection votes over it: majority, as the paper evaluates)

As the code: the aggregation prompt is a single user turn (no system prompt) showing each solution's
whole text; subsets are drawn afresh for every member (seeded per problem and loop); temperature 1.0,
K = 4, N = 16, T = 10 (the code's defaults; conf/strategy/rsa.yaml). The prompt's words are ttscale's,
its structure the code's. `last_population` < N makes the last loop write fewer members: with T = 2,
K = N and last_population = 1 it is NeMo-Skills' GenSynthesis (N solutions, one synthesis), with
RSA's prompt. Every aggregation is a policy call (usage, budgets): N x T samples in all. Unlike the
code: the first population comes from the dataset's prompt template (the code: the dataset's user
turn alone), the aggregation shows the bare question (the code: that user turn, its instruction
included), and the vote is ttscale's majority (a solution without an answer abstains; the code's
empty answer forms a group of its own).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace

from ttscale.strategies.context import Context, derive_seed
from ttscale.types import Problem, SamplingParams, Trajectory

AGGREGATE = ("Below is a {kind} and {count} candidate solutions to it. Some of them may be wrong or incomplete. "
             "Combine what is sound in them into one better solution: reason it through, and where the candidates "
             "disagree, work out which is right; if none is right, try another approach. {ending}")
REFINE = ("Below is a {kind} and a candidate solution to it, which may be wrong or incomplete. Improve it into a "
          "better solution; if it is wrong throughout, try another approach. {ending}")
MATH_ENDING = "Give the final answer in \\boxed{}."
CODE_ENDING = "Give the complete final program in one ```python code block."


def aggregation_prompt(question: str, solutions: list[str], code: bool = False) -> str:
    """The problem, then the solutions (each whole), then the request: one user turn."""
    ending = CODE_ENDING if code else MATH_ENDING
    kind = "programming task" if code else "problem"
    head = (REFINE.format(kind=kind, ending=ending) if len(solutions) == 1
            else AGGREGATE.format(kind=kind, count=len(solutions), ending=ending))
    shown = "\n\n".join(f"--- Solution {i} ---\n{s.strip()}" for i, s in enumerate(solutions, 1))
    return f"{head}\n\nProblem:\n{question.strip()}\n\n{shown}\n\nNow write your improved solution. {ending}"


@dataclass
class RSA:
    n: int = 16  # the population N (the code's --population)
    params: SamplingParams = SamplingParams()
    loops: int = 10  # T, populations in all, the first one included (the code's --loops)
    k: int = 4  # solutions shown per aggregation (the code's --k)
    last_population: int | None = None  # members of the last loop (None: N); 1 with T = 2, K = N: GenSynthesis

    def __post_init__(self) -> None:
        if self.loops < 1 or self.n < 1:
            raise ValueError(f"loops={self.loops} and n={self.n} must be >= 1")
        if not 1 <= self.k <= self.n:
            raise ValueError(f"k={self.k}: the solutions shown per aggregation must be between 1 and n={self.n}")
        if self.last_population is not None and not 1 <= self.last_population <= self.n:
            raise ValueError(f"last_population={self.last_population} must be between 1 and n={self.n}")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        code = "entry_point" in (problem.metadata or {})
        first = await ctx.generate(ctx.prompt, replace(self.params, n=self.n), key="rsa/0")
        population = [Trajectory.from_completion(c) for c in first]
        for t in range(1, self.loops):
            size = self.last_population if (t == self.loops - 1 and self.last_population) else self.n
            rng = random.Random(derive_seed(ctx.run_seed, problem.id, f"rsa/{t}/subsets"))
            subsets = [rng.sample(range(len(population)), self.k) for _ in range(size)]
            prompts = [aggregation_prompt(problem.question, [population[i].text for i in s], code) for s in subsets]
            made = await asyncio.gather(*(
                ctx.generate(self.render(ctx, p), replace(self.params, n=1), key=f"rsa/{t}/{j}")
                for j, p in enumerate(prompts)))
            population = [Trajectory.from_completion(c) for (c,) in made]
        ctx.info.update(loops=self.loops, k=self.k, population=self.n, final_population=len(population))
        return population

    @staticmethod
    def render(ctx: Context, prompt: str):
        """One user turn for a chat model (as the code renders it); the text itself for a base model."""
        return prompt if isinstance(ctx.prompt, str) else [{"role": "user", "content": prompt}]


METHODS = {"rsa": RSA}  # strategy.search=rsa
