"""PRM-guided beam search over steps (as in search-and-learn, Beeching et al. 2024; Snell et al. 2024).

    beams <- the empty solution expanded into N first steps
    repeat (at most max_steps rounds):
        with lookahead k: each new beam is also continued k greedy steps (not kept); the reference
            (search-and-learn's beam search) generates them but scores the beam's current text
            (lookahead_scoring="current"); "lookahead" scores the continuation instead
        score each new step
        finished beams are set aside; stop once N are finished
        optionally drop unfinished beams whose text duplicates an earlier one (finished ones are kept)
        keep the top N / M unfinished beams by aggregated score
        refill (reference): copy the kept beams round-robin back to N active beams and extend each
            copy by one step, so every round expands N beams however many have finished;
            refill=False expands each kept beam into M next steps (fewer as beams finish)
    return the first N finished beams, in the order they finished (sort_completed=False, the code's;
    true: the N of the highest score), never unfinished ones (they would have no answer)

N = n (beams), M = beam_width. Every beam of one round is one batched round of requests. The
duplicate filter is off by default, as the code's config class (its recipes turn it on:
strategy.filter_duplicates=true). Unlike the code, fewer than N finished beams are not padded with
copies up to N.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import ClassVar

from ttscale.strategies.context import Context
from ttscale.strategies.step.tree import Node, StepGenerator, finished_trajectories, score_nodes
from ttscale.types import Problem, Trajectory


async def score_with_lookahead(gen: StepGenerator, verifier, problem: Problem, ctx: Context,
                               nodes: list[Node], lookahead: int, key: str, scoring: str = "lookahead") -> None:
    """Score each node's newest step; with lookahead, by the score of its greedy continuation
    (scoring="lookahead"), or generate the continuation and score the node itself ("current")."""
    if lookahead <= 0:
        await score_nodes(verifier, problem, nodes, ctx)
        return
    ahead = list(await asyncio.gather(*(gen.lookahead(ctx, n, lookahead, key) for n in nodes)))
    if scoring == "current":
        await score_nodes(verifier, problem, nodes, ctx)
        return
    await score_nodes(verifier, problem, ahead, ctx)
    for node, seen in zip(nodes, ahead):
        if seen is not node:  # a finished node has no lookahead: it was scored itself
            node.step_scores = [*node.step_scores, seen.step_scores[-1]]


def unique(nodes: list[Node]) -> list[Node]:
    seen: set[str] = set()
    kept = []
    for node in nodes:
        if node.text not in seen:
            seen.add(node.text)
            kept.append(node)
    return kept


@dataclass
class BeamSearch:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    verifier: object
    n: int = 8  # beams
    beam_width: int = 4  # expansions of each kept beam; N / M beams are kept
    generator: StepGenerator = field(default_factory=StepGenerator)
    aggregation: str = "last"  # how a beam's step scores rank it
    lookahead: int = 0
    filter_duplicates: bool = False  # the code's default (its recipes: true); unfinished beams only
    sort_completed: bool = False  # the code's default: the first n finished beams; true: the n best by score
    refill: bool = True  # reference: N beams are expanded every round, however many have finished
    lookahead_scoring: str = "current"  # reference: lookahead is generated, the current text is scored

    def __post_init__(self) -> None:
        if self.n % self.beam_width:
            raise ValueError(f"n={self.n} must be a multiple of beam_width={self.beam_width}")
        if self.lookahead_scoring not in ("current", "lookahead"):
            raise ValueError(f"lookahead_scoring={self.lookahead_scoring!r}; choose one of: current, lookahead")

    def expansions(self, kept: list[Node]) -> list[tuple[Node, int]]:
        """How many next steps each kept beam gets: M each, or (refill) N shared round-robin."""
        if not self.refill:
            return [(b, self.beam_width) for b in kept]
        copies = [kept[i % len(kept)] for i in range(self.n)] if kept else []
        return [(b, sum(c is b for c in copies)) for b in kept]

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        keep = self.n // self.beam_width
        beams = await self.generator.expand(ctx, Node("0"), self.n, "beam/0")
        finished: list[Node] = []
        rounds = 1
        while beams:
            await score_with_lookahead(self.generator, self.verifier, problem, ctx, beams, self.lookahead,
                                       f"beam/{rounds}", self.lookahead_scoring)
            finished += [b for b in beams if b.finished]
            if len(finished) >= self.n:
                break
            active = [b for b in beams if not b.finished]
            if self.filter_duplicates:  # as the code: among the unfinished beams, after the finished are set aside
                active = unique(active)
            ranked = sorted(active, key=lambda b: -b.value(self.aggregation))
            active = ranked[:keep]
            ctx.decide("kept", round=rounds, nodes=[b.id for b in active],
                       values=[b.value(self.aggregation) for b in active])
            ctx.decide("pruned", round=rounds, nodes=[b.id for b in ranked[keep:]],
                       values=[b.value(self.aggregation) for b in ranked[keep:]],
                       duplicates=[b.id for b in beams if not b.finished and b not in ranked])
            children = await self.generator.expand_all(ctx, self.expansions(active), f"beam/{rounds}")
            beams = [c for group in children for c in group]
            rounds += 1
        if self.sort_completed:
            finished.sort(key=lambda b: -b.value(self.aggregation))
        ctx.decide("selected", nodes=[b.id for b in finished[: self.n]],
                   values=[b.value(self.aggregation) for b in finished[: self.n]])
        ctx.info.update(beams=self.n, beam_width=self.beam_width, rounds=rounds)
        return finished_trajectories(finished[: self.n], self.aggregation)


METHODS = {"beam_search": BeamSearch}  # strategy.search=beam_search
