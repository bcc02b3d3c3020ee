"""A strategy = a search (produces trajectories) + an optional verifier (scores them) + a selector."""

from __future__ import annotations

import asyncio

from dataclasses import dataclass, replace

from ttscale.strategies.context import Context
from ttscale.strategies.search.parallel import ParallelSampling
from ttscale.strategies.select.base import Selector
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.select.majority import MajorityVote
from ttscale.types import Candidate, Problem, Result, SamplingParams, Trajectory
from ttscale.verifiers.base import Verifier, traits_of
from ttscale.verifiers.function import check_verifier
from ttscale.verifiers.logprob import MeanLogprob


@dataclass
class Strategy:
    search: object  # async (problem, ctx) -> list[Trajectory]
    select: Selector
    verifier: Verifier | None = None
    name: str = "strategy"

    def __post_init__(self) -> None:
        # What cannot give a right result is refused here, not on the first problem.
        searched = getattr(self.search, "verifier", None)  # a step-wise search scores as it goes
        check_verifier(self.verifier, "Strategy(verifier=...)")
        check_verifier(searched, f"{type(self.search).__name__}(verifier=...)")
        if self.verifier is not None and self.verifier is searched:
            raise ValueError(f"the same verifier is given to {type(self.search).__name__} and to Strategy: the search "
                             "already scored its trajectories, and the Strategy would score them again (twice the "
                             "verifier compute, counted twice); pass it to the search only")
        scored = searched is not None or getattr(self.search, "scores_trajectories", False)
        if getattr(self.select, "needs_scores", False) and self.verifier is None and not scored:
            raise ValueError(f"{type(self.select).__name__} selects by score, and nothing scores the trajectories: "
                             "give Strategy(verifier=...) (e.g. MeanLogprob(), a PRM, FunctionVerifier(fn))")

    async def solve(self, problem: Problem, ctx: Context) -> Result:
        return await self._finish(problem, ctx, await self.search(problem, ctx))

    async def extend(self, problem: Problem, ctx: Context, first: Result, extra: int) -> Result:
        """A second pass (a search that reallocates budget across problems, see the runtime): `extra`
        more trajectories from `self.search.extend`, selected together with the first pass's
        candidates; the usage is both passes'. The search's `extend(problem, ctx, extra, first)` writes
        the result's info (the first pass's selection is made again, not copied); the first pass's
        candidates keep their verifier scores (only the new trajectories are scored)."""
        more = await self.search.extend(problem, ctx, extra, first)
        before = [Trajectory(text=c.text, num_tokens=c.num_tokens, finish_reason=c.finish_reason, answer=c.answer,
                             score=c.score, step_scores=list(c.step_scores), stats=dict(c.stats))
                  for c in first.candidates]
        ctx.usage.add(first.usage)
        return await self._finish(problem, ctx, before + more, scored=len(before))

    async def _finish(self, problem: Problem, ctx: Context, trajectories: list[Trajectory], scored: int = 0) -> Result:
        todo = [t for t in trajectories if t.answer is None]
        if todo:
            finished = [t.finish_reason not in ("length", "abort", None) for t in todo]
            texts = [t.text if t.answer_text is None else t.answer_text for t in todo]
            many = getattr(ctx.grader, "extract_many", None)
            if many is not None:  # one round trip for all of them (math: Math-Verify in the grader's workers)
                answers = await asyncio.to_thread(many, texts, finished)
            else:
                answers = [ctx.grader.extract(t, problem, finished=f) if t else None for t, f in zip(texts, finished)]
            for t, answer in zip(todo, answers):
                t.answer = answer
        if self.verifier is not None and trajectories[scored:]:
            scores = await ctx.verify(self.verifier, problem, trajectories[scored:])
            for t, s in zip(trajectories[scored:], scores):
                t.score, t.step_scores = s.value, s.steps
        groups = await ctx.grader.agroup([t.answer for t in trajectories], problem)
        if getattr(self.select, "needs_context", False):  # a selection that calls the model (GenSelect)
            selection = await self.select.choose(problem, ctx, trajectories, groups)
        else:
            selection = self.select(trajectories, groups)
        chosen = None if selection.index is None else trajectories[selection.index]
        candidates = [
            Candidate(text=t.text, answer=t.answer, score=t.score, num_tokens=t.num_tokens,
                      finish_reason=t.finish_reason, group=g, stats=t.stats,
                      step_scores=t.step_scores)
            for t, g in zip(trajectories, groups)
        ]
        info = {"strategy": self.name, "chosen": selection.index, **ctx.info, **selection.info}
        if not trajectories:  # its own outcome, counted in summaries: not just a wrong answer
            info["no_finished_solution"] = True
        return Result(problem_id=problem.id, answer=chosen.answer if chosen else None,
                      candidates=candidates, usage=ctx.usage, info=info)


def self_consistency(n: int = 8, params: SamplingParams | None = None, tie_break: str = "first") -> Strategy:
    """N samples, answers grouped by math equivalence, majority wins."""
    params = params or SamplingParams(temperature=0.8, top_p=0.95)
    return Strategy(ParallelSampling(n, params), MajorityVote(tie_break), name="self_consistency")


def best_of_n(n: int = 8, params: SamplingParams | None = None, verifier: Verifier | None = None) -> Strategy:
    """N samples, the highest-scoring wins; by default the score is the mean token logprob."""
    verifier = verifier or MeanLogprob()
    params = params or SamplingParams(temperature=0.8, top_p=0.95)
    if traits_of(verifier).needs_logprobs and params.logprobs is None:
        params = replace(params, logprobs=0)
    return Strategy(ParallelSampling(n, params), BestScore(), verifier, name="best_of_n")
