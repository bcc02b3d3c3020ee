"""The policy model's own confidence: mean token logprob of the completion."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits


def mean_logprob(t: Trajectory) -> float | None:
    """The trajectory's mean token logprob; None when it generated nothing. A trajectory that generated
    tokens without their logprob is an error, never a score: the backend was not asked for logprobs."""
    if t.num_tokens == 0:
        return None
    if t.cumulative_logprob is None:
        raise ValueError("a sample has no logprob: sample with logprobs >= 0 to score by mean logprob")
    return t.cumulative_logprob / t.num_tokens


class MeanLogprob:
    """score = cumulative logprob / generated tokens (vLLM reports raw logprobs, before temperature).

    Needs completions sampled with logprobs >= 0 (a sample without them is an error); an empty
    completion scores -inf. Costs nothing: the numbers come with the samples.
    """

    traits = Traits(needs_logprobs=True, score_range=(float("-inf"), 0.0))

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage | None = None) -> list[Scores]:
        return [Scores(float("-inf") if (m := mean_logprob(t)) is None else m) for t in trajectories]


class MeanTokenProbability:
    """score = exp(mean token logprob): the geometric-mean token probability, in (0, 1].

    The same free signal as MeanLogprob on a probability scale, so that it also serves step-wise
    search (particle weights take logit(r)) as a verifier that costs no model call. An empty completion
    scores 0; a sample without logprobs is an error.
    """

    traits = Traits(needs_logprobs=True, score_range=(0.0, 1.0))

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage | None = None) -> list[Scores]:
        return [Scores(0.0 if (m := mean_logprob(t)) is None else math.exp(m)) for t in trajectories]
