"""Compute accounting: FLOPs from model sizes, dollar cost, cost-of-pass, the Pareto frontier."""

import math

import pytest

from ttscale.analysis.compute import Prices, compute_summary, cost_of_pass, dollars, flops
from ttscale.analysis.report import pareto_frontier
from ttscale.types import Result, Usage


def test_flops_count_prompt_tokens_the_cache_did_not_serve():
    usage = Usage(prompt_tokens=1000, cached_prompt_tokens=600, completion_tokens=250, verifier_tokens=100)
    # 2 x P x (generated + fresh prompt) + 2 x P_verifier x verifier tokens
    assert flops(usage, 1e9) == 2e9 * (250 + 400) + 2e9 * 100
    assert flops(usage, 1e9, verifier_params=7e9) == 2e9 * (250 + 400) + 2 * 7e9 * 100
    assert flops(usage, None) is None


def test_dollars_and_cost_of_pass():
    usage = Usage(prompt_tokens=2_000_000, cached_prompt_tokens=1_000_000, completion_tokens=1_000_000)
    prices = Prices(prompt=1.0, cached_prompt=0.1, completion=4.0)
    assert dollars(usage, prices) == pytest.approx(1.0 + 0.1 + 4.0)
    assert dollars(usage, Prices()) is None
    # expected cost of one correct answer: mean cost per attempt / success rate
    assert cost_of_pass([2.0, 4.0, 6.0, 4.0], [True, False, False, True]) == pytest.approx(4.0 / 0.5)
    assert math.isinf(cost_of_pass([1.0], [False]))
    assert cost_of_pass([], []) is None


def test_compute_summary_costs_every_problem_and_divides_by_graded_accuracy():
    results = [Result("a", "1", usage=Usage(completion_tokens=100), correct=True),
               Result("b", "2", usage=Usage(completion_tokens=300), correct=False),
               Result("c", None, usage=Usage(completion_tokens=200), error="RuntimeError: x")]  # spent, not graded
    out = compute_summary(results, params=1e6, prices=Prices(prompt=0.0, completion=1.0))
    # the mean over all three (as tokens per problem), divided by the accuracy over the two graded
    assert out["flops_per_problem"] == pytest.approx(2e6 * 200) and out["flops_of_pass"] == pytest.approx(2e6 * 200 / 0.5)
    assert out["dollars_per_problem"] == pytest.approx(200 / 1e6) and out["cost_of_pass"] == pytest.approx(400 / 1e6)


def test_pareto_frontier():
    points = [(10, 0.2), (20, 0.5), (15, 0.1), (40, 0.5), (50, 0.7), (5, 0.2)]
    # (5, 0.2) beats (10, 0.2); (20, 0.5) beats (40, 0.5); (15, 0.1) is dominated
    assert pareto_frontier(points) == [5, 1, 4]
