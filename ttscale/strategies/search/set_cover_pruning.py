"""Early hypothesis pruning by confidence-weighted token set cover (Sultan & Astudillo 2025,
"Confidence-Weighted Token Set Cover for Early Hypothesis Pruning in Self-Consistency").

    start N hypotheses in parallel (streams)
    every `step` tokens (once every live hypothesis has `step` more tokens, or has finished):
        U    = the tokens of the live hypotheses' prefixes (the first checkpoint tokens)
        keep = a greedy weighted set cover of U: repeatedly take the hypothesis with the lowest
               cost / (tokens of U it newly covers), cost from its confidence (low confidence: high cost)
        abort every live hypothesis not kept
    majority vote over the hypotheses that finish

The paper's abstract fixes the shape (periodic pruning of parallel hypotheses by the model's
confidence and the lexical coverage of all current hypotheses by a retained subset, a fast weighted
set cover); its method section could not be read here, so these are ttscale's choices, each an
option: elements are distinct token ids (`ngram: 1`, the title's "token set cover"), a finished
hypothesis is never pruned and its tokens count as covered, cost = the perplexity of the sampled
tokens so far (`cost: perplexity`; `inverse_confidence` uses 1 / DeepConf's token confidence, which
needs top-k logprobs), `min_keep` hypotheses always survive, and pruning repeats every `step` tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ttscale.backends.base import StreamFold
from ttscale.strategies.context import Context
from ttscale.types import Problem, SamplingParams, Trajectory

COSTS = ("perplexity", "inverse_confidence")


def greedy_cover(sets: Sequence[set], costs: Sequence[float], covered: set | None = None) -> list[int]:
    """Chvatal's greedy weighted set cover: indices of the chosen sets, in the order chosen. Each
    round takes the set with the lowest cost per newly covered element (ties: the lower index)."""
    uncovered = set().union(*sets) - (covered or set())
    chosen: list[int] = []
    while uncovered:
        best, best_ratio = None, math.inf
        for i, s in enumerate(sets):
            gain = len(s & uncovered)
            if gain and i not in chosen and costs[i] / gain < best_ratio:
                best, best_ratio = i, costs[i] / gain
        chosen.append(best)
        uncovered -= sets[best]
    return chosen


def elements(ids: Sequence[int], ngram: int) -> set:
    if ngram == 1:
        return set(ids)
    return {tuple(ids[i:i + ngram]) for i in range(len(ids) - ngram + 1)} or {tuple(ids)}


@dataclass
class Hypothesis:
    index: int
    fold: StreamFold
    sampled: list[float] = field(default_factory=list)  # also without top-k logprobs (the fold's stats need them)
    task: asyncio.Task | None = None
    done: bool = False
    pruned: bool = False
    error: Exception | None = None

    @property
    def live(self) -> bool:
        return not self.done and not self.pruned


@dataclass
class SetCoverPruning:
    needs_token_ids = True  # token ids from the backend (a server backend needs a tokenizer)
    n: int = 16
    params: SamplingParams = SamplingParams(logprobs=0)
    step: int = field(default=32, metadata={"config": "prune_step"})  # the paper's step size
    cost: str = field(default="perplexity", metadata={"config": "prune_cost"})
    ngram: int = field(default=1, metadata={"config": "prune_ngram"})
    min_keep: int = 1

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise ValueError(f"cost={self.cost!r}; choose one of: {', '.join(COSTS)}")
        for key in ("step", "ngram", "min_keep"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")
        if self.params.logprobs is None:
            self.params = replace(self.params, logprobs=0)
        if self.cost == "inverse_confidence" and not self.params.logprobs:
            raise ValueError("cost=inverse_confidence needs top-k logprobs: set strategy.logprobs")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        changed = asyncio.Event()
        keep = self.cost == "inverse_confidence"  # the per-token confidences, from the fold's statistics
        hyps = [Hypothesis(i, StreamFold(self.params.stats, keep_series=keep)) for i in range(self.n)]
        for h in hyps:
            h.task = asyncio.create_task(self._read(ctx, h, changed))
        rounds, pruned_at = 0, {}
        try:
            checkpoint = self.step
            while any(h.live for h in hyps):
                while not all(not h.live or h.fold.num_tokens >= checkpoint for h in hyps):
                    failed = [h.error for h in hyps if h.error is not None]
                    if failed:
                        raise failed[0]
                    changed.clear()
                    await changed.wait()
                live = [h for h in hyps if h.live]
                if len(live) > self.min_keep:
                    rounds += 1
                    for h in self.prune(live, [h for h in hyps if h.done and not h.pruned], checkpoint):
                        h.pruned = True
                        pruned_at[h.index] = checkpoint
                        h.task.cancel()
                checkpoint += self.step
        finally:
            for h in hyps:
                if not h.task.done():
                    h.task.cancel()
            results = await asyncio.gather(*(h.task for h in hyps), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        survivors = [h for h in hyps if h.done and not h.pruned]
        ctx.info.update({"pruned": len(pruned_at), "pruning_rounds": rounds,
                         "pruned_tokens": sum(h.fold.num_tokens for h in hyps if h.pruned),
                         "pruned_at": {str(i): t for i, t in sorted(pruned_at.items())}})
        return [Trajectory.from_completion(h.fold.completion()) for h in survivors]

    def prune(self, live: list[Hypothesis], finished: list[Hypothesis], checkpoint: int) -> list[Hypothesis]:
        """The live hypotheses that the cover does not keep."""
        sets = [elements(h.fold.token_ids[:checkpoint], self.ngram) for h in live]
        covered = set().union(*(elements(h.fold.token_ids, self.ngram) for h in finished))
        costs = [self._cost(h, checkpoint) for h in live]
        keep = greedy_cover(sets, costs, covered)
        for i in sorted(range(len(live)), key=lambda i: (costs[i], i)):  # at least min_keep survive
            if len(keep) >= self.min_keep:
                break
            if i not in keep:
                keep.append(i)
        return [h for i, h in enumerate(live) if i not in keep]

    def _cost(self, h: Hypothesis, checkpoint: int) -> float:
        if self.cost == "perplexity":
            values = h.sampled[:checkpoint]
            if not values or any(math.isnan(v) for v in values):
                raise ValueError("set-cover pruning needs the sampled tokens' logprobs, and the backend gave none")
            return math.exp(-sum(values) / len(values))
        values = h.fold.stats.confidences[:checkpoint]
        if not values:
            raise ValueError("cost=inverse_confidence needs top-k logprobs, and the backend gave none")
        return 1.0 / max(sum(values) / len(values), 1e-9)

    async def _read(self, ctx: Context, h: Hypothesis, changed: asyncio.Event) -> None:
        try:
            async with contextlib.aclosing(ctx.stream(ctx.prompt, self.params, key=f"hypothesis/{h.index}")) as deltas:
                async for delta in deltas:
                    h.fold.add(delta)
                    h.sampled.extend(delta.logprobs or [math.nan] * len(delta.token_ids))
                    changed.set()
            h.done = True
        except asyncio.CancelledError:
            h.fold.abort()
            raise
        except Exception as exc:
            h.error = exc
            raise
        finally:
            changed.set()


METHODS = {"set_cover_pruning": SetCoverPruning}  # strategy.search=set_cover_pruning
