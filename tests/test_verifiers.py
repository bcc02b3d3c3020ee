import asyncio
import math

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.strategies import Context, Strategy
from ttscale.strategies.search import ParallelSampling
from ttscale.strategies.select import BestScore, WeightedVote
from ttscale.types import Completion, Problem, SamplingParams, TokenLogprob, Trajectory, Usage
from ttscale.verifiers import GroundTruth, SelfEvaluation, aggregate, split_steps
from ttscale.verifiers.self_eval import yes_probability


def test_step_splitting_is_uniform():
    assert split_steps("a\n\nb  \n\n\n\n  \n\nc\n") == ["a", "b", "c"]
    assert split_steps("one step") == ["one step"]
    assert split_steps("x ки y ки", " ки") == ["x", " y"]


@pytest.mark.parametrize("how, expected", [("last", 0.5), ("min", 0.2), ("prod", 0.09), ("mean", 1.6 / 3)])
def test_aggregations(how, expected):
    assert aggregate([0.9, 0.2, 0.5], how) == pytest.approx(expected)


def test_aggregation_errors():
    with pytest.raises(ValueError, match="choose one of"):
        aggregate([0.5], "max")
    with pytest.raises(ValueError, match="own final score"):
        aggregate([0.5], "model")
    assert aggregate([], "mean", model_value=0.7) == 0.7


def test_yes_probability_sums_variants():
    top = {"Yes": math.log(0.5), " yes": math.log(0.1), "No": math.log(0.2), "Maybe": math.log(0.1)}
    assert yes_probability(top) == pytest.approx(0.6 / 0.8)
    assert yes_probability({"Hmm": -0.1}) == 0.5


def judge_script(p_yes_by_marker):
    """A backend that answers a self-evaluation prompt with P(Yes) chosen by a marker in it."""
    def script(prompt, params, index):
        last_step = prompt.split("\n\nIs th")[0].rsplit("\n\n", 1)[-1]
        p = next((v for k, v in p_yes_by_marker.items() if k in last_step), 0.5)
        top = {"Yes": math.log(p), "No": math.log(1 - p)}
        return Completion("Yes", 1, "length", math.log(p), token_logprobs=[TokenLogprob("Yes", math.log(p), top)])
    return script


def test_self_evaluation_per_step_and_usage():
    backend = ScriptedBackend(judge_script({"good": 0.9, "bad": 0.2}))
    verifier = SelfEvaluation(backend, granularity="step", aggregation="min")
    usage = Usage()
    problem = Problem(id="p", question="q")
    (scores,) = asyncio.run(verifier.score(problem, [Trajectory("good one\n\ngood two\n\nbad three")], usage))
    assert scores.steps == pytest.approx([0.9, 0.9, 0.2]) and scores.value == pytest.approx(0.2)
    assert usage.verifier_calls == 3 and usage.verifier_tokens > 0
    assert all(c.params.max_tokens == 1 and c.params.temperature == 0 and c.params.logprobs == 20
               for c in backend.calls)
    # the k-th judgement sees exactly the first k steps
    assert [c.prompt.count("good") + c.prompt.count("bad") for c in backend.calls] == [1, 2, 3]


def test_best_of_n_and_weighted_vote_with_self_evaluation(grader):
    def policy(prompt, params, index):
        if "Answer Yes or No" in prompt:
            return judge_script({"\\boxed{4}": 0.9, "\\boxed{5}": 0.3})(prompt, params, index)
        return ["\\boxed{5}", "\\boxed{5}", "\\boxed{4}"][index]

    backend = ScriptedBackend(policy)
    problem = Problem(id="p", question="2+2?", answer="4")
    for select in (BestScore(), WeightedVote("score")):  # 0.9 > 0.3 + 0.3
        strategy = Strategy(ParallelSampling(3, SamplingParams()), select, SelfEvaluation(backend))
        ctx = Context(problem=problem, backend=backend, grader=grader)
        result = asyncio.run(strategy.solve(problem, ctx))
        assert result.answer == "4" and result.usage.verifier_calls == 3
        assert [c.score for c in result.candidates] == pytest.approx([0.3, 0.3, 0.9])


def test_ground_truth_oracle(grader):
    problem = Problem(id="p", question="q", answer="1/2")
    scores = asyncio.run(GroundTruth(grader).score(problem, [Trajectory("\\boxed{0.5}"), Trajectory("\\boxed{2}")]))
    assert [s.value for s in scores] == [1.0, 0.0]
    with pytest.raises(ValueError, match="no reference answer"):
        asyncio.run(GroundTruth(grader).score(Problem(id="x", question="q"), [Trajectory("1")]))


def test_invalid_granularity():
    with pytest.raises(ValueError, match="outcome, step"):
        SelfEvaluation(None, granularity="token")
