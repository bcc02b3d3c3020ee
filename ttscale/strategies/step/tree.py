"""Shared machinery of step-wise search: partial solutions (nodes), one-step expansion, scoring.

A node is a partial solution: the steps generated so far after the problem's prompt. Expanding it
asks the backend for k continuations of ONE step: the assistant message is continued (not a new
turn), generation stops at the step delimiter (kept in the text), and the step is capped in tokens.
A child is finished on end-of-sequence (or another stop string), when its step contains the answer
marker (`\\boxed`), when the solution's token budget is spent, or at the last allowed step. With
`last_step="complete"` (search-and-learn's beam search) that step is generated without the delimiter
stop, so that it can finish; with `last_step="step"` (Puri et al.'s particle filtering code and
its_hub) it is a step like the others, and a solution still open there ends unfinished. With
`block_tokens` set, steps are fixed blocks of that many tokens instead (value-guided block search: no
notion of step needed).

The prompt prefix is re-sent at each step; vLLM's prefix cache makes that cheap (the search reports
the cached share of prompt tokens in usage). With `continuation="ids"` (the default) a partial
solution is continued as token ids: the problem's chat template rendered once, then the ids each
step generated, so nothing is re-rendered (templates that rewrite assistant content, such as those
dropping `<think>` blocks, cannot change the prefix) or re-tokenised at a step boundary.
`continuation="text"` re-renders the text as a continued assistant message (the reference
implementations' way); it is also used when the backend returns no token ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ttscale.confidence import StatsSpec, concat_series, series_stats
from ttscale.strategies.context import Context
from ttscale.types import Completion, Problem, Prompt, SamplingParams, TokenPrompt, Trajectory
from ttscale.verifiers.base import aggregate, traits_of


@dataclass
class Node:
    """A partial (or finished) solution. `id` is its path in the search tree ("0.2.1"): a stable
    seed key that does not depend on the order in which concurrent requests complete."""

    id: str = "0"
    steps: list[str] = field(default_factory=list)
    step_scores: list[float] = field(default_factory=list)
    finished: bool = False
    finish_reason: str | None = None
    step_tokens: list[int] = field(default_factory=list)
    step_logprobs: list[float | None] = field(default_factory=list)
    # per-step token statistic series (with logprobs): joined, they give the solution's exact stats
    step_series: list[dict | None] = field(default_factory=list)
    stats_spec: StatsSpec | None = None
    step_ids: list[tuple[int, ...] | None] = field(default_factory=list)  # each step's generated token ids

    @property
    def text(self) -> str:
        return "".join(self.steps)

    @property
    def depth(self) -> int:
        return len(self.steps)

    @property
    def num_tokens(self) -> int:
        return sum(self.step_tokens)

    @property
    def cumulative_logprob(self) -> float | None:
        return None if None in self.step_logprobs else sum(self.step_logprobs)

    def prefix(self, depth: int, id: str) -> Node:
        """Its first `depth` steps with their scores (particle Gibbs compares a reference there)."""
        if depth >= self.depth:
            return replace(self, id=id)
        return Node(id, self.steps[:depth], self.step_scores[:depth], False, None,
                    self.step_tokens[:depth], self.step_logprobs[:depth], self.step_series[:depth], self.stats_spec,
                    self.step_ids[:depth])

    @property
    def ids(self) -> tuple[int, ...] | None:
        """The generated token ids of all its steps, or None when a step has none."""
        if any(ids is None for ids in self.step_ids) or len(self.step_ids) != len(self.steps):
            return None
        return tuple(t for ids in self.step_ids for t in ids)

    def value(self, aggregation: str = "last") -> float:
        """The node's score: its step scores aggregated (nan before it is scored). "model": the score
        of the whole partial solution judged as one step, which scoring stores as its newest score."""
        return aggregate(self.step_scores, "last" if aggregation == "model" else aggregation)

    @property
    def stats(self) -> dict[str, float]:
        """Token statistics of the whole partial solution (empty when its steps carry no logprobs)."""
        if not self.step_series or any(s is None for s in self.step_series):
            return {}
        return series_stats(concat_series(self.step_series), self.stats_spec or StatsSpec())

    def trajectory(self, score: float | None = None, with_stats: bool = True) -> Trajectory:
        """with_stats=False skips the token statistics (a pass over every token so far): scoring a
        partial solution at each step does not need them, only the final candidates do."""
        return Trajectory(text=self.text, num_tokens=self.num_tokens, finish_reason=self.finish_reason,
                          cumulative_logprob=self.cumulative_logprob, steps=list(self.steps),
                          score=score, step_scores=list(self.step_scores), stats=self.stats if with_stats else {})


@dataclass
class StepGenerator:
    """How one step is generated. params carry temperature/top_p/top_k; n, stop and max_tokens are set here."""

    params: SamplingParams = SamplingParams()
    delimiter: str = "\n\n"
    max_step_tokens: int = 256
    max_steps: int = 12
    max_tokens: int = 2048  # the whole solution
    answer_marker: str | None = "\\boxed"
    block_tokens: int | None = None  # fixed-size blocks instead of delimiter steps
    continuation: str = "ids"  # ids | text (see the module doc)
    last_step: str = "complete"  # complete (runs to the end of the budget) | step (capped like the others)

    def __post_init__(self) -> None:
        if self.continuation not in ("ids", "text"):
            raise ValueError(f"continuation={self.continuation!r}; choose one of: ids, text")
        if self.last_step not in ("complete", "step"):
            raise ValueError(f"last_step={self.last_step!r}; choose one of: complete, step")

    def prompt(self, base: Prompt, node: Node, base_ids: TokenPrompt | None = None) -> tuple[Prompt, bool]:
        """The prompt that continues `node`: the prompt's ids extended by the steps' ids (with
        continuation="ids" and `base_ids`), else the assistant message continued, or text appended."""
        if not node.steps:
            return base, False
        ids = node.ids if self.continuation == "ids" and base_ids is not None else None
        if ids is not None:
            return base_ids.extend(ids), False
        if isinstance(base, str):
            return base + node.text, False
        return [*base, {"role": "assistant", "content": node.text}], True

    def _params(self, node: Node, k: int, last: bool) -> SamplingParams:
        room = self.max_tokens - node.num_tokens
        if self.block_tokens:
            return replace(self.params, n=k, max_tokens=min(self.block_tokens, room))
        stop = tuple(self.params.stop) + (() if last else (self.delimiter,))
        series = bool(self.params.logprobs)  # statistics over several steps need the per-token series
        if self.block_tokens:
            return replace(self.params, n=k, max_tokens=min(self.block_tokens, room), keep_series=series)
        return replace(self.params, n=k, stop=stop, include_stop=True, keep_series=series,
                       max_tokens=room if last else min(self.max_step_tokens, room))

    def _stop_at(self, before: str, step: str) -> int | None:
        """Where a stop string (other than the delimiter) starts in before + step, if it ends inside
        `step`: the backend sees one step at a time, so a stop split over two steps ("\n" + "Question:")
        is found here."""
        joined, found = before + step, None
        for stop in self.params.stop:
            if not stop:
                continue
            at = joined.find(stop, max(0, len(before) - len(stop) + 1))
            if at >= 0 and (found is None or at < found):
                found = at
        return found

    def child(self, node: Node, index: int, c: Completion) -> Node:
        steps = [*node.steps, c.text]
        cut = self._stop_at(node.text, c.text)
        if cut is not None:  # the solution ends before the stop string (tokens after it were still spent)
            steps = _cut_steps(steps, cut)
        tokens = node.num_tokens + c.num_tokens
        at_delimiter = c.finish_reason == "stop" and c.stop_reason == self.delimiter and not self.block_tokens
        ended = cut is not None or (c.finish_reason == "stop" and not at_delimiter)  # end-of-sequence, a stop string
        marker = self.answer_marker is not None and self.answer_marker in steps[-1]
        out_of_budget = tokens >= self.max_tokens or len(steps) >= self.max_steps or c.num_tokens == 0
        finished = ended or marker or out_of_budget
        reason = "stop" if ended or marker else ("length" if finished else None)
        return Node(f"{node.id}.{index}", steps, list(node.step_scores), finished, reason,
                    [*node.step_tokens, c.num_tokens], [*node.step_logprobs, c.cumulative_logprob],
                    [*node.step_series, c.series], self.params.stats,
                    # a step the stop string cut no longer matches its ids (a prefix of it may be continued)
                    [ids if text == before else None
                     for ids, text, before in zip([*node.step_ids, c.token_ids], steps, [*node.steps, c.text])])

    async def expand(self, ctx: Context, node: Node, k: int, key: str) -> list[Node]:
        """k one-step continuations of `node` in one backend call (they share its prefix)."""
        if node.finished or k <= 0:
            return []
        base_ids = ctx.prompt_ids() if self.continuation == "ids" and node.steps else None
        prompt, cont = self.prompt(ctx.prompt, node, base_ids)
        last = node.depth + 1 >= self.max_steps and self.last_step == "complete"
        params = replace(self._params(node, k, last), continue_final_message=cont)
        completions = await ctx.generate(prompt, params, key=f"{key}/{node.id}", role=None)
        children = [self.child(node, i, c) for i, c in enumerate(completions)]
        for child in children:
            ctx.grew(child, node, "lookahead" if key.endswith("/lookahead") else "step")
        return children

    async def complete(self, ctx: Context, node: Node, key: str, temperature: float | None = None
                       ) -> tuple[Node, Completion | None]:
        """`node` continued to the end of the solution in ONE sample (no step delimiter: a foresight
        rollout), with the completion; a finished node as it is (and None)."""
        if node.finished:
            return node, None
        base_ids = ctx.prompt_ids() if self.continuation == "ids" and node.steps else None
        prompt, cont = self.prompt(ctx.prompt, node, base_ids)
        params = replace(self._params(node, 1, True), continue_final_message=cont)
        if temperature is not None:
            params = replace(params, temperature=temperature)
        (c,) = await ctx.generate(prompt, params, key=f"{key}/{node.id}", role=None)
        child = self.child(node, 0, c)
        ctx.grew(child, node, "rollout")
        return child, c

    async def expand_all(self, ctx: Context, requests: Sequence[tuple[Node, int]], key: str) -> list[list[Node]]:
        """Many expansions at once: the backend batches them with every other problem's."""
        return list(await asyncio.gather(*(self.expand(ctx, node, k, key) for node, k in requests)))

    async def lookahead(self, ctx: Context, node: Node, steps: int, key: str) -> Node:
        """`node` continued greedily by up to `steps` more steps (scored, not kept, by beam search)."""
        greedy = replace(self, params=replace(self.params, temperature=0.0))
        for _ in range(steps):
            if node.finished:
                break
            (node,) = await greedy.expand(ctx, node, 1, f"{key}/lookahead")
        return node


def _cut_steps(steps: list[str], at: int) -> list[str]:
    """The steps with their joined text cut at character `at` (as many steps: later ones empty)."""
    out, seen = [], 0
    for step in steps:
        keep = max(0, min(len(step), at - seen))
        out.append(step[:keep])
        seen += len(step)
    return out


async def score_nodes(verifier, problem: Problem, nodes: Sequence[Node], ctx: Context, whole: bool = False) -> None:
    """Give each node the score of its newest step (the verifier called through `ctx.verify`, which
    counts it into usage and records it in a trace).

    whole=True (particle filtering's reference reward, its_hub's "model" aggregation): the whole
    partial solution is judged as ONE step and that value is stored as the node's newest score.
    Otherwise a verifier that judges the last step (self-evaluation) judges only the new step, and any
    other verifier scores the partial solution step by step; its per-step scores replace the node's
    (a PRM reads every step in one pass anyway).
    """
    if not nodes:
        return
    if whole:
        trajectories = [replace(n.trajectory(with_stats=False), steps=[n.text]) for n in nodes]
        scores = await ctx.verify(verifier, problem, trajectories)
        for node, s in zip(nodes, scores):
            node.step_scores = [*node.step_scores, float(s.value)]
        return
    trajectories = [n.trajectory(with_stats=False) for n in nodes]
    if traits_of(verifier).judges_last_step:
        values = await ctx.verify(verifier, problem, trajectories, last_step=True)
        for node, v in zip(nodes, values):
            node.step_scores = [*node.step_scores, float(v)]
        return
    scores = await ctx.verify(verifier, problem, trajectories)
    for node, s in zip(nodes, scores):
        steps = list(s.steps)
        node.step_scores = steps[-node.depth:] if len(steps) >= node.depth else [*node.step_scores[: node.depth - 1], s.value]


def finished_trajectories(nodes: Sequence[Node], aggregation: str) -> list[Trajectory]:
    """Trajectories of the finished nodes, scored by their aggregated step scores."""
    return [n.trajectory(n.value(aggregation)) for n in nodes if n.finished]
