"""Self-evaluation: the policy model judges a solution, or each step of it, on the same engine.

As in Xie et al. 2023 ("Self-Evaluation Guided Beam Search for Reasoning" / "Decomposition Enhances
Reasoning via Self-Evaluation Guided Decoding"): the model is asked whether the (last) step is
correct and the score is P(Yes) / (P(Yes) + P(No)), read from the top-k logprobs of its first answer
token (variants such as " yes" are summed). It needs no PRM, so guided search works on a laptop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.backends.base import Backend
from ttscale.types import Problem, SamplingParams, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits, aggregate, steps_of

STEP_PROMPT = ("Question:\n{question}\n\nSolution so far:\n{steps}\n\n"
               "Is the last step of this solution correct? Answer Yes or No.")
OUTCOME_PROMPT = ("Question:\n{question}\n\nProposed solution:\n{steps}\n\n"
                  "Is this solution correct? Answer Yes or No.")


def yes_probability(top: dict[str, float]) -> float:
    """P(Yes) / (P(Yes) + P(No)) over top-k token logprobs; 0.5 when neither appears."""
    yes = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() == "yes")
    no = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() == "no")
    return 0.5 if yes + no == 0 else yes / (yes + no)


@dataclass
class SelfEvaluation:
    traits = Traits(needs_top_logprobs=True, judges_last_step=True)
    backend: Backend
    granularity: str = "outcome"  # outcome: one judgement per solution; step: one per step
    aggregation: str = "mean"
    step_delimiter: str = "\n\n"
    max_steps: int = 16  # steps beyond this are judged together with the last one
    top_k: int = 20

    def __post_init__(self) -> None:
        if self.granularity not in ("outcome", "step"):
            raise ValueError(f"granularity={self.granularity!r}; choose one of: outcome, step")
        aggregate([0.5], self.aggregation) if self.aggregation != "model" else None

    async def _judge(self, question: str, steps: list[str], template: str, usage: Usage) -> float:
        prompt = [{"role": "user", "content": template.format(question=question, steps="\n\n".join(steps))}]
        params = SamplingParams(n=1, temperature=0.0, max_tokens=1, logprobs=self.top_k, keep_token_logprobs=True)
        out = await self.backend.generate(prompt, params)
        usage.verifier_calls += 1
        usage.verifier_tokens += out.prompt_tokens + sum(c.num_tokens for c in out.completions)
        tokens = out.completions[0].token_logprobs or []
        if not tokens or not tokens[0].top:  # never a silent 0.5: the search would run unguided
            raise RuntimeError("self-evaluation got no top-k logprobs from the backend; it needs a backend "
                               "that returns them (vLLM does)")
        return yes_probability(tokens[0].top)

    async def _score_one(self, problem: Problem, t: Trajectory, usage: Usage) -> Scores:
        steps = steps_of(t, self.step_delimiter)
        if self.granularity == "outcome" or not steps:
            value = await self._judge(problem.question, steps or [t.text], OUTCOME_PROMPT, usage)
            return Scores(value, [value])
        if len(steps) > self.max_steps:
            steps = steps[: self.max_steps - 1] + [self.step_delimiter.join(steps[self.max_steps - 1:])]
        step_scores = await asyncio.gather(
            *(self._judge(problem.question, steps[: i + 1], STEP_PROMPT, usage) for i in range(len(steps)))
        )
        return Scores(aggregate(step_scores, self.aggregation), list(step_scores))

    async def score_last_step(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[float]:
        """Step-wise search: judge only each partial solution's newest step (earlier ones were judged)."""

        async def judge(t: Trajectory) -> float:
            steps = steps_of(t, self.step_delimiter) or [t.text]
            return await self._judge(problem.question, steps[-self.max_steps:], STEP_PROMPT, usage)

        return list(await asyncio.gather(*(judge(t) for t in trajectories)))

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[Scores]:
        return list(await asyncio.gather(*(self._score_one(problem, t, usage) for t in trajectories)))
