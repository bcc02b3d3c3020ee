"""The policy model's own confidence: mean token logprob of the completion."""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.types import Problem, Trajectory


class MeanLogprob:
    """score = cumulative logprob / generated tokens (vLLM reports raw logprobs, before temperature).

    Needs completions sampled with logprobs >= 0; a trajectory without a logprob scores -inf.
    """

    needs_logprobs = True

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory]) -> list[float]:
        scores = []
        for t in trajectories:
            if t.cumulative_logprob is None or t.num_tokens == 0:
                scores.append(float("-inf"))
            else:
                scores.append(t.cumulative_logprob / t.num_tokens)
        return scores
