"""GenSelect (Toshniwal et al. 2025, "GenSelect: A Generative Approach to Best-of-N"; the authors'
code: NVIDIA NeMo-Skills, nemo_skills/inference/model/parallel_thinking.py and
prompt/config/generic/genselect.yaml): the policy model reads k candidate solutions in one prompt
and names the best.

    mode=sample (the code):  for j in 1..judgments:
                                 shuffle the candidates (seeded), show the first k, numbered from 0
                                 the judge reasons and ends with "Judgment: IDX"
                             the answer: the majority over the judgments' winners
    mode=knockout:           shuffle, judge consecutive groups of k, their winners go on to the
                             next round until one is left (the authors' experiment branch)

A candidate is shown by its text after its last `reasoning_end` ("</think>"), stripped; empty ones
and ones over `max_solution_chars` (the code's 16384) are left out. The verdict is the last
"Judgment: N" (the code's regex) with N in range. Unlike the code, which then picks at random, a
verdict that cannot be parsed is undecided: it names no winner and is counted (`unparsed: random`
gives the code's pick). With `orderings` > 1 a knockout group is judged under that many orderings
and its winner is their majority (position bias averaged out). Every judge call is a policy call,
in usage and in compute budgets.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ttscale.strategies.context import Context, derive_seed
from ttscale.strategies.select.base import Selection
from ttscale.types import Problem, SamplingParams, Trajectory

PROMPT = """You will be given a problem followed by an enumerated list of {num_solutions} candidate solutions. \
Your task is to systematically analyze these solutions to identify the best solution among them.

Problem: {problem}

Solutions:
{solutions}

End your evaluation with exactly:
Judgment: [IDX]
where IDX is the index 0-{max_idx} of the best solution.

Example: If Solution 2 (index 2) is best, write: "Judgment: 2" at the end.

Important: Use only the format "Judgment: 2" with no special formatting, quotes, or additional characters."""
VERDICT = re.compile(r"Judg[e]?ment: (\d+)")
MODES = ("sample", "knockout")


def verdict(text: str, count: int) -> int | None:
    """The index the judge named (the last "Judgment: N"), or None: none, or out of range."""
    found = VERDICT.findall(text or "")
    if not found:
        return None
    index = int(found[-1])
    return index if index < count else None


@dataclass
class GenSelect:
    needs_scores = False
    needs_stats = False
    needs_probability_scores = False
    needs_context = True  # it calls the model: Strategy awaits `choose(problem, ctx, ...)`
    # k, solutions per judge prompt (the code's window_size)
    window: int = field(default=8, metadata={"config": "judge_window"})
    # mode=sample: judge calls, each on its own shuffled window (the code's docs run 64)
    judgments: int = 8
    mode: str = field(default="sample", metadata={"config": "judge_mode"})
    # mode=knockout: orderings each group is judged under (their majority goes on)
    orderings: int = field(default=1, metadata={"config": "judge_orderings"})
    judge_temperature: float = 0.6  # the code's
    # the judge's top_p: the run's (strategy.top_p), as the code's judge inherits the generation's
    judge_top_p: float = field(default=1.0, metadata={"config": "top_p"})
    judge_tokens: int = 2048  # the judge's cap (the authors' branch: 2048; the code leaves the server's)
    reasoning_end: str | None = "</think>"
    max_solution_chars: int = 16384
    # undecided (no winner, counted) | random (the code's pick)
    unparsed: str = field(default="undecided", metadata={"config": "unparsed_verdict"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.unparsed not in ("undecided", "random"):
            raise ValueError(f"unparsed={self.unparsed!r}; choose one of: undecided, random")
        for key in ("window", "judgments", "orderings", "judge_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")
        if self.window < 2:
            raise ValueError(f"window={self.window!r}: a judge compares at least 2 solutions")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        raise TypeError("genselect calls the model: use it inside a Strategy (it awaits choose(problem, ctx, ...))")

    def shown(self, t: Trajectory) -> str:
        text = t.text
        if self.reasoning_end and self.reasoning_end in text:
            text = text[text.rindex(self.reasoning_end) + len(self.reasoning_end):]
        return text.strip()

    async def choose(self, problem: Problem, ctx: Context, trajectories: Sequence[Trajectory],
                     groups: Sequence[int | None]) -> Selection:
        pool = [i for i, t in enumerate(trajectories) if 0 < len(self.shown(t)) <= self.max_solution_chars]
        counts = {"judge_calls": 0, "unparsed": 0}
        if not pool:
            return Selection(None, {"reason": "no candidate to judge", **counts})
        if len(pool) == 1:
            return Selection(pool[0], {"reason": "one candidate", **counts})
        if self.mode == "sample":
            # the judgments at once (the backend batches them with every other problem's calls)
            verdicts = await asyncio.gather(*(
                self._judge(problem, ctx, trajectories, self._shuffled(ctx, pool, f"genselect/{j}")[: self.window],
                            f"genselect/{j}", counts) for j in range(self.judgments)))
            parsed = [w for w in verdicts if w is not None]
            info = {"judgments": self.judgments, **counts}
            if not parsed:
                return Selection(None, {**info, "reason": "no judgment could be parsed"})
            # a winner without an answer does not vote (the code drops them before the majority)
            winners = [w for w in parsed if groups[w] is not None]
            info["winners_without_answer"] = len(parsed) - len(winners)
            if not winners:
                return Selection(None, {**info, "reason": "no judged winner has an answer"})
            # the majority over the winners' answers (answer groups)
            votes = Counter(groups[w] for w in winners)
            top = max(votes.values())
            chosen = next(w for w in winners if votes[groups[w]] == top)
            ctx.decide("selected", candidate=chosen, votes={str(g): v for g, v in votes.items()})
            info["winners"] = dict(Counter(str(trajectories[w].answer) for w in winners).most_common())
            return Selection(chosen, info)
        alive, round_ = self._shuffled(ctx, pool, "genselect/knockout"), 0
        while len(alive) > 1:
            groups_ = [alive[start: start + self.window] for start in range(0, len(alive), self.window)]

            async def winner(start: int, group: list[int]) -> int | None:
                if len(group) == 1:
                    return group[0]
                picks = await asyncio.gather(*(
                    self._judge(problem, ctx, trajectories,
                                self._shuffled(ctx, group, f"genselect/{round_}/{start}/{o}") if o else group,
                                f"genselect/{round_}/{start}/{o}", counts) for o in range(self.orderings)))
                picks = [p for p in picks if p is not None]
                return Counter(picks).most_common(1)[0][0] if picks else None  # undecided: no one goes on

            # a round's groups (and orderings) are judged at once
            found = await asyncio.gather(*(winner(i * self.window, g) for i, g in enumerate(groups_)))
            alive, round_ = [w for w in found if w is not None], round_ + 1
        info = {"rounds": round_, **counts}
        ctx.decide("selected", candidate=alive[0] if alive else None, rounds=round_)
        if not alive:
            return Selection(None, {**info, "reason": "no judgment could be parsed"})
        return Selection(alive[0], info)

    def _shuffled(self, ctx: Context, items: list[int], key: str) -> list[int]:
        out = list(items)
        random.Random(derive_seed(ctx.run_seed, ctx.problem.id, key)).shuffle(out)
        return out

    async def _judge(self, problem: Problem, ctx: Context, trajectories: Sequence[Trajectory], order: list[int],
                     key: str, counts: dict) -> int | None:
        """One judge call over the candidates `order` (shown numbered from 0); the winner's index
        into trajectories, or None (unparsed, unless unparsed=random)."""
        solutions = "\n\n".join(f"Solution {i}: {self.shown(trajectories[t])}" for i, t in enumerate(order))
        prompt = PROMPT.format(num_solutions=len(order), problem=problem.question, solutions=solutions,
                               max_idx=len(order) - 1)
        params = SamplingParams(temperature=self.judge_temperature, top_p=self.judge_top_p, max_tokens=self.judge_tokens)
        (c,) = await ctx.generate([{"role": "user", "content": prompt}], params, key=key, role="judge")
        counts["judge_calls"] += 1
        index = verdict(c.text, len(order))
        parsed = index is not None
        if not parsed:
            counts["unparsed"] += 1
            if self.unparsed == "undecided":
                ctx.decide("judged", call=key, shown=order, winner=None, parsed=False)
                return None
            index = random.Random(derive_seed(ctx.run_seed, ctx.problem.id, key + "/random")).randrange(len(order))
        ctx.decide("judged", call=key, shown=order, winner=order[index], parsed=parsed)
        return order[index]


METHODS = {"genselect": GenSelect}  # strategy.select=genselect
