"""Compute spent, for comparisons at matched compute.

FLOPs are estimated from model sizes (Kaplan et al. 2020's 2 x parameters per token of a forward
pass): 2 x P x generated tokens, plus 2 x P x prompt tokens that the prefix cache did not serve, plus
2 x P_verifier x verifier tokens. Cost-of-pass (Erol et al. 2025, "Cost-of-Pass: An Economic
Framework for Evaluating Language Models") is the expected cost of one correct answer: the mean
cost of an attempt divided by the success rate (infinite when nothing is solved).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ttscale.types import Result, Usage


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens; None: unknown (no dollar cost is reported)."""

    prompt: float | None = None
    cached_prompt: float | None = None  # None: same as prompt
    completion: float | None = None
    verifier: float | None = None  # None: same as prompt (a verifier reads)

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> Prices:
        return cls(**{k: v for k, v in (cfg or {}).items() if k in cls.__dataclass_fields__})

    @property
    def known(self) -> bool:
        return self.prompt is not None and self.completion is not None


def flops(usage: Usage, params: float | None, verifier_params: float | None = None) -> float | None:
    """Estimated FLOPs of one problem's usage; None when the policy's size is unknown."""
    if not params:
        return None
    fresh_prompt = max(0, usage.prompt_tokens - usage.cached_prompt_tokens)
    total = 2.0 * params * (usage.completion_tokens + fresh_prompt)
    if usage.verifier_tokens:
        total += 2.0 * (verifier_params if verifier_params is not None else params) * usage.verifier_tokens
    return total


def dollars(usage: Usage, prices: Prices) -> float | None:
    if not prices.known:
        return None
    cached_price = prices.cached_prompt if prices.cached_prompt is not None else prices.prompt
    verifier_price = prices.verifier if prices.verifier is not None else prices.prompt
    fresh_prompt = max(0, usage.prompt_tokens - usage.cached_prompt_tokens)
    return (fresh_prompt * prices.prompt + usage.cached_prompt_tokens * cached_price
            + usage.completion_tokens * prices.completion + usage.verifier_tokens * verifier_price) / 1e6


def cost_of_pass(costs: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Mean cost per attempt / accuracy: the expected cost of one correct answer (inf if none)."""
    if not costs:
        return None
    accuracy = sum(bool(c) for c in correct) / len(correct)
    mean_cost = sum(costs) / len(costs)
    return mean_cost / accuracy if accuracy > 0 else math.inf


def compute_summary(results: Sequence[Result], params: float | None, verifier_params: float | None = None,
                    prices: Prices | None = None) -> dict:
    """Per-problem means of FLOPs and dollars over every problem (as the token measures: an errored
    or ungraded problem spent compute too), and cost-of-pass: that mean over the accuracy on graded
    problems (every attempt's cost, per correct answer)."""
    graded = [r for r in results if r.correct is not None and r.error is None]
    out: dict = {"params": params}
    if not results:
        return out
    accuracy = sum(bool(r.correct) for r in graded) / len(graded) if graded else None

    def per_correct(mean: float) -> float | None:
        if accuracy is None:
            return None
        return mean / accuracy if accuracy > 0 else math.inf

    per_flops = [flops(r.usage, params, verifier_params) for r in results]
    if all(f is not None for f in per_flops):
        out["flops_per_problem"] = sum(per_flops) / len(per_flops)
        out["flops_of_pass"] = per_correct(out["flops_per_problem"])
    prices = prices or Prices()
    if prices.known:
        out["dollars_per_problem"] = sum(dollars(r.usage, prices) for r in results) / len(results)
        out["cost_of_pass"] = per_correct(out["dollars_per_problem"])
    return out
