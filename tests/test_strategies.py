import asyncio
import random

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.strategies import Context, MajorityVote, best_of_n, derive_seed, self_consistency
from ttscale.strategies.select.best_score import BestScore
from ttscale.types import Completion, Problem, SamplingParams, Trajectory


def cycle(texts):
    """A script returning texts[i] for sample i of each call."""
    return lambda prompt, params, i: texts[i % len(texts)]


def solve(strategy, backend, grader, problem=None):
    problem = problem or Problem(id="p1", question="q", answer="2")
    ctx = Context(problem=problem, backend=backend, grader=grader, run_seed=0)
    return asyncio.run(strategy.solve(problem, ctx))


def test_majority_groups_equivalent_answers(grader):
    # 1/2, 0.5 and \frac{1}{2} vote together (3 votes) and beat 3 (2 votes)
    texts = ["\\boxed{3}", "\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{3}", "\\boxed{\\frac{1}{2}}"]
    result = solve(self_consistency(n=5), ScriptedBackend(cycle(texts)), grader)
    assert result.answer == "\\frac{1}{2}"  # Math-Verify's normalised form of the first one, 1/2
    assert result.info["votes"] == {"\\frac{1}{2}": 3, "3": 2}
    assert [c.group for c in result.candidates] == [0, 1, 1, 0, 1]


def test_majority_tie_broken_by_first_sample_and_recorded(grader):
    texts = ["\\boxed{7}", "\\boxed{5}", "\\boxed{5}", "\\boxed{7}"]
    result = solve(self_consistency(n=4), ScriptedBackend(cycle(texts)), grader)
    assert result.answer == "7"
    assert result.info["tie"] == ["7", "5"] and result.info["tie_break"] == "first"


def test_majority_tie_broken_by_score():
    trajs = [Trajectory("a", answer="7", score=0.1), Trajectory("b", answer="5", score=0.9),
             Trajectory("c", answer="5", score=0.8), Trajectory("d", answer="7", score=0.2)]
    selection = MajorityVote("score")(trajs, [0, 1, 1, 0])
    assert selection.index == 1 and selection.info["tie"] == ["7", "5"]


def test_unanswered_samples_do_not_vote(grader):
    texts = ["no idea", "\\boxed{4}", "still thinking", "hmm"]
    result = solve(self_consistency(n=4), ScriptedBackend(cycle(texts)), grader)
    assert result.answer == "4" and result.info["voters"] == 1


def test_no_answer_at_all(grader):
    result = solve(self_consistency(n=3), ScriptedBackend(cycle(["nothing", "none"])), grader)
    assert result.answer is None and result.info["reason"] == "no answer extracted"


def test_single_sample_greedy_is_a_config(grader):
    backend = ScriptedBackend(cycle(["\\boxed{9}"]))
    result = solve(self_consistency(n=1, params=SamplingParams(temperature=0.0)), backend, grader)
    assert result.answer == "9"
    assert backend.calls[0].params.temperature == 0.0 and backend.calls[0].params.n == 1


def test_best_of_n_picks_highest_mean_logprob(grader):
    def script(prompt, params, i):
        # sample 2 has the best mean logprob (-0.1/token); sample 0 is longer but worse per token
        return [Completion("\\boxed{1} long answer", 4, "stop", -2.0),
                Completion("\\boxed{2}", 1, "stop", -0.5),
                Completion("\\boxed{3}", 1, "stop", -0.1)][i]

    backend = ScriptedBackend(script)
    result = solve(best_of_n(n=3), backend, grader)
    assert result.answer == "3"
    assert backend.calls[0].params.logprobs == 0  # the scorer needs logprobs, so they were asked for
    assert [c.score for c in result.candidates] == [-0.5, -0.5, -0.1]


def test_best_score_prefers_answered_and_breaks_ties_early():
    trajs = [Trajectory("x", answer=None, score=5.0), Trajectory("y", answer="1", score=1.0),
             Trajectory("z", answer="2", score=1.0)]
    assert BestScore()(trajs, [None, 0, 1]).index == 1
    assert BestScore(require_answer=False)(trajs, [None, 0, 1]).index == 0


def test_seeds_derive_from_run_seed_problem_and_call_index():
    assert derive_seed(0, "p1", 0) == derive_seed(0, "p1", 0)
    seeds = {derive_seed(s, p, c) for s in (0, 1) for p in ("p1", "p2") for c in (0, 1)}
    assert len(seeds) == 8
    assert all(0 <= s < 2**31 for s in seeds)


def test_seeded_random_script_reproduces(grader):
    def script(prompt, params, i):
        rng = random.Random(params.seed * 1000 + i)
        return f"\\boxed{{{rng.randint(1, 3)}}}"

    first = solve(self_consistency(n=8), ScriptedBackend(script), grader)
    again = solve(self_consistency(n=8), ScriptedBackend(script), grader)
    other = solve(self_consistency(n=8), ScriptedBackend(script), grader, Problem(id="p2", question="q", answer="2"))
    assert [c.answer for c in first.candidates] == [c.answer for c in again.candidates]
    assert [c.answer for c in first.candidates] != [c.answer for c in other.candidates]


def test_usage_counts_tokens_and_calls(grader):
    backend = ScriptedBackend(cycle(["a b \\boxed{2}", "c \\boxed{2}"]))
    result = solve(self_consistency(n=4), backend, grader, Problem(id="u", question="one two three", answer="2"))
    assert result.usage.backend_calls == 1
    assert result.usage.completion_tokens == 3 + 2 + 3 + 2
    # the prompt counts once per sample, and the (scripted, perfect) prefix cache serves all but one
    assert result.usage.prompt_tokens == 4 * 3 and result.usage.cached_prompt_tokens == 3 * 3


def test_invalid_tie_break():
    with pytest.raises(ValueError, match="choose one of: first, score"):
        MajorityVote("random")
