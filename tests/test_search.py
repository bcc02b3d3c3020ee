"""Adaptive self-consistency and sequential refinement on the scripted backend."""

import asyncio
from collections import Counter

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.strategies import Context, MajorityVote, Strategy
from ttscale.strategies.search import AdaptiveSampling, SequentialRefinement
from ttscale.strategies.search.adaptive import leader_settled
from ttscale.strategies.select import WeightedVote
from ttscale.types import Completion, Problem, SamplingParams


def solve(strategy, backend, grader):
    problem = Problem(id="p", question="q", answer="4", messages=[{"role": "user", "content": "q"}])
    return asyncio.run(strategy.solve(problem, Context(problem=problem, backend=backend, grader=grader)))


def test_beta_rule_by_hand():
    # 4-0: P(Beta(5,1) > 0.5) = 1 - 0.5^5 = 0.969 -> settled at 0.95; 3-1: 0.8125 -> not settled
    assert leader_settled(Counter({0: 4}), "beta", 0.95)
    assert not leader_settled(Counter({0: 3, 1: 1}), "beta", 0.95)
    assert leader_settled(Counter({0: 3, 1: 1}), "supermajority", 0.75)
    assert not leader_settled(Counter({0: 2, 1: 2}), "supermajority", 0.75)
    assert not leader_settled(Counter(), "beta", 0.5)


def test_adaptive_stops_early_on_a_clear_majority(grader):
    backend = ScriptedBackend(lambda prompt, params, i: "\\boxed{4}")
    search = AdaptiveSampling(n=16, params=SamplingParams(), batch=4, rule="beta", threshold=0.95, min_samples=4)
    result = solve(Strategy(search, MajorityVote()), backend, grader)
    assert len(backend.calls) == 1 and result.info["samples_saved"] == 12
    assert result.usage.backend_calls == 1 and result.answer == "4"


def test_adaptive_does_not_stop_on_a_split_vote(grader):
    backend = ScriptedBackend(lambda prompt, params, i: "\\boxed{4}" if i % 2 else "\\boxed{5}")
    search = AdaptiveSampling(n=12, params=SamplingParams(), batch=4, rule="beta", threshold=0.95)
    result = solve(Strategy(search, MajorityVote()), backend, grader)
    assert len(backend.calls) == 3 and result.info["samples_saved"] == 0
    assert len(result.candidates) == 12


def test_cancel_early_streams_every_sample_and_aborts_the_rest_once_settled(grader):
    """#37 (its_hub's BetaSelfConsistency): all 16 samples stream at once. The first four to finish
    (one token each) all say 4: Beta(5, 1) puts P(leader ahead) at 0.97 >= 0.95, so the 12 long ones
    still streaming are aborted; their tokens so far are counted. A split vote aborts nothing."""
    started = []

    def script(prompt, params, i):
        started.append(len(started))
        return "\\boxed{4}" if len(started) <= 4 else "still thinking " * 40 + "\\boxed{5}"

    backend = ScriptedBackend(script, token_delay=0.001)
    search = AdaptiveSampling(n=16, params=SamplingParams(), rule="beta", threshold=0.95, min_samples=4,
                              mode="cancel_early")
    result = solve(Strategy(search, MajorityVote()), backend, grader)
    assert len(backend.calls) == 16  # every sample started at once
    assert result.info["samples_drawn"] == 4 and result.info["samples_aborted"] == 12 and backend.aborted == 12
    assert result.answer == "4" and len(result.candidates) == 4
    assert 4 < result.usage.completion_tokens < 4 + 12 * 81  # the aborted ones cost what they had generated
    assert result.usage.completion_tokens == backend.generated_tokens

    split = ScriptedBackend(lambda prompt, params, i: "\\boxed{4}" if len(split.calls) % 2 else "\\boxed{5}",
                            token_delay=0.001)
    search = AdaptiveSampling(n=8, params=SamplingParams(), rule="beta", threshold=0.95, mode="cancel_early")
    result = solve(Strategy(search, MajorityVote()), split, grader)
    assert result.info["samples_drawn"] == 8 and result.info["samples_aborted"] == 0 and split.aborted == 0


def test_adaptive_rejects_unknown_rule():
    with pytest.raises(ValueError, match="choose one of: supermajority, beta"):
        AdaptiveSampling(rule="vibes")


def test_sequential_refinement_builds_on_the_previous_attempt(grader):
    def script(prompt, params, i):
        attempt = prompt.count("previous solution")  # one refine turn per later round
        return Completion(f"attempt {attempt} \\boxed{{{4 if attempt else 3}}}", 3, "stop", -0.3,
                          stats={"mean_entropy": 0.5})

    backend = ScriptedBackend(script)
    search = SequentialRefinement(n=6, chains=2, params=SamplingParams())  # the paper's: accumulate, all rounds
    result = solve(Strategy(search, WeightedVote("inverse_entropy")), backend, grader)
    assert len(backend.calls) == 6  # chains x rounds samples, as parallel n=6
    refine_prompts = [c.prompt for c in backend.calls if "previous solution" in c.prompt]
    assert len(refine_prompts) == 4
    # context accumulates: round 1 sees attempt 0; round 2 sees attempts 0 AND 1
    assert sorted(("attempt 0" in p, "attempt 1" in p) for p in refine_prompts) == [(True, False)] * 2 + [(True, True)] * 2
    assert sorted(c.answer for c in result.candidates) == ["3", "3", "4", "4", "4", "4"]  # every round votes
    assert result.answer == "4" and result.usage.completion_tokens == 18
    # the alternatives: only the previous attempt in context; only each chain's final answer votes
    backend = ScriptedBackend(script)
    search = SequentialRefinement(n=6, chains=2, params=SamplingParams(), context="previous", vote="final")
    result = solve(Strategy(search, WeightedVote("inverse_entropy")), backend, grader)
    refine_prompts = [c.prompt for c in backend.calls if "previous solution" in c.prompt]
    assert sorted(("attempt 0" in p, "attempt 1" in p) for p in refine_prompts) == [(False, True)] * 2 + [(True, False)] * 2
    assert [c.answer for c in result.candidates] == ["4", "4"]
    with pytest.raises(ValueError, match="context='all'; choose one of: accumulate, previous"):
        SequentialRefinement(context="all")
    seeds = sorted(c.params.seed for c in backend.calls)
    assert len(set(seeds)) == 6  # keyed seeds: distinct and independent of timing
