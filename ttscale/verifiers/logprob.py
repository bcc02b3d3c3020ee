"""The policy model's own confidence: mean token logprob of the completion."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits


class MeanLogprob:
    """score = cumulative logprob / generated tokens (vLLM reports raw logprobs, before temperature).

    Needs completions sampled with logprobs >= 0; a trajectory without a logprob scores -inf. Costs
    nothing: the numbers come with the samples.
    """

    traits = Traits(needs_logprobs=True, score_range=(float("-inf"), 0.0))

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage | None = None) -> list[Scores]:
        out = []
        for t in trajectories:
            if t.cumulative_logprob is None or t.num_tokens == 0:
                out.append(Scores(float("-inf")))
            else:
                out.append(Scores(t.cumulative_logprob / t.num_tokens))
        return out


class MeanTokenProbability:
    """score = exp(mean token logprob): the geometric-mean token probability, in (0, 1].

    The same free signal as MeanLogprob on a probability scale, so that it also serves step-wise
    search (particle weights take logit(r)) as a verifier that costs no model call. A trajectory
    without logprobs scores 0.
    """

    traits = Traits(needs_logprobs=True, score_range=(0.0, 1.0))

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage | None = None) -> list[Scores]:
        return [Scores(0.0 if t.cumulative_logprob is None or t.num_tokens == 0
                       else math.exp(t.cumulative_logprob / t.num_tokens)) for t in trajectories]
