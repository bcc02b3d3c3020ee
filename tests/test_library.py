"""The library from research code (#27): every building block importable, mistakes refused at
construction (a plain function as verifier, one verifier given twice, best-of-N with nothing that
scores), and results as a DataFrame."""

from __future__ import annotations

import math

import pytest

import ttscale
import ttscale.strategies
from ttscale.build import VERIFIERS
from ttscale.strategies import registry
from ttscale.strategies.step.tree import StepGenerator

PROBLEM = ttscale.Problem(id="p", question="What is 2 + 2?", answer="4")


def scripted(texts):
    return ttscale.ScriptedBackend(lambda prompt, params, i: texts[i % len(texts)])


def test_every_registered_method_and_verifier_is_exported():
    for kind in ("search", "select"):
        for name, entry in registry.methods(kind).items():
            cls = entry[0] if isinstance(entry, tuple) else entry
            assert getattr(ttscale, cls.__name__) is cls, f"ttscale.{cls.__name__} ({kind}={name})"
            assert getattr(ttscale.strategies, cls.__name__) is cls
    for name in ("UnitTests", "TransformersPRM", "VLLMPoolingPRM", "MeanTokenProbability", "SelfEvaluation",
                 "GroundTruth", "MeanLogprob", "FunctionVerifier", "CodeGrader", "MathGrader", "VLLMBackend",
                 "OpenAIBackend", "ScriptedBackend", "DemoBackend"):
        assert getattr(ttscale, name).__name__ == name
    assert len(VERIFIERS) == 6  # the CLI's verifiers (mean_logprob ... unit_tests): their classes are above
    for name in ttscale.__all__:
        getattr(ttscale, name)


def test_a_plain_function_is_refused_as_a_verifier_and_can_be_wrapped():
    def brevity(problem, text):
        return 1.0 / (1 + len(text))

    search = ttscale.ParallelSampling(2, ttscale.SamplingParams())
    with pytest.raises(TypeError, match=r"no `score` method.*FunctionVerifier\(fn\)"):
        ttscale.Strategy(search, ttscale.BestScore(), brevity)

    class Sync:
        def score(self, problem, trajectories, usage):
            return []

    with pytest.raises(TypeError, match="must be `async def`"):
        ttscale.Strategy(search, ttscale.BestScore(), Sync())
    strategy = ttscale.Strategy(search, ttscale.BestScore(), ttscale.FunctionVerifier(brevity))
    backend = scripted(["a long answer of many words: \\boxed{5}", "\\boxed{4}"])
    result = ttscale.run(strategy, [PROBLEM], backend, progress=False).results[0]
    assert result.answer == "4" and result.candidates[1].score == pytest.approx(1 / 10)
    assert result.usage.verifier_calls == 2


def test_a_verifier_function_that_returns_no_number_fails_the_problem_not_the_vote():
    strategy = ttscale.Strategy(ttscale.ParallelSampling(2, ttscale.SamplingParams()), ttscale.BestScore(),
                                ttscale.FunctionVerifier(lambda problem, text: math.nan))
    result = ttscale.run(strategy, [PROBLEM], scripted(["\\boxed{4}"]), progress=False).results[0]
    assert result.answer is None and "must return a finite number" in result.error


def test_one_verifier_given_to_the_search_and_the_strategy_is_refused():
    verifier = ttscale.FunctionVerifier(lambda problem, text: 0.5)
    beam = ttscale.BeamSearch(verifier=verifier, generator=StepGenerator(ttscale.SamplingParams()), n=2,
                              beam_width=2)
    with pytest.raises(ValueError, match="score them again"):
        ttscale.Strategy(beam, ttscale.BestScore(), verifier)
    ttscale.Strategy(beam, ttscale.BestScore())  # the search's scores rank its candidates


def test_best_of_n_without_scores_refuses():
    with pytest.raises(ValueError, match="BestScore selects by score, and nothing scores"):
        ttscale.Strategy(ttscale.ParallelSampling(2, ttscale.SamplingParams()), ttscale.BestScore())
    trajectories = [ttscale.Trajectory("\\boxed{1}", answer="1"), ttscale.Trajectory("\\boxed{2}", answer="2")]
    with pytest.raises(ttscale.MissingStatistic, match="no trajectory has a score"):
        ttscale.BestScore()(trajectories, [0, 1])
    trajectories[1].score = 0.1  # one scored: the unscored one ranks last
    assert ttscale.BestScore()(trajectories, [0, 1]).index == 1


def test_results_as_a_dataframe():
    strategy = ttscale.self_consistency(n=3)
    problems = [PROBLEM, ttscale.Problem(id="q", question="What is 3 + 3?", answer="6")]
    outcome = ttscale.run(strategy, problems, scripted(["\\boxed{4}", "\\boxed{4}", "\\boxed{5}"]), progress=False)
    frame = ttscale.results_frame(outcome, params=135e6)
    assert list(frame["problem_id"]) == ["p", "q"] and list(frame["correct"]) == [True, False]
    assert list(frame["answer"]) == ["4", "4"] and list(frame["reference"]) == ["4", "6"]
    assert (frame["completion_tokens"] == 3).all() and (frame["flops"] > 0).all()
    same = ttscale.results_frame(outcome.results, columns={"run": "sc"})
    assert list(same.columns[:2]) == ["run", "problem_id"] and same["flops"].isna().all()


def test_vote_study_refuses_a_run_without_token_statistics_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    study = Path(__file__).resolve().parents[1] / "evals" / "vote_study.py"
    problems = [PROBLEM, ttscale.Problem(id="q", question="What is 3 + 3?", answer="6")]
    texts = ["so \\boxed{4}", "\\boxed{4}", "\\boxed{6}"]
    runs = {}
    for name, kwargs in {"plain": {}, "stats": {"synthetic_logprobs": 20}}.items():
        backend = ttscale.ScriptedBackend(lambda prompt, params, i: texts[i % 3], **kwargs)
        params = ttscale.SamplingParams(logprobs=20 if kwargs else None)
        ttscale.run(ttscale.self_consistency(n=3, params=params), problems, backend, output=tmp_path / name / "results.jsonl",
                    progress=False)
        runs[name] = subprocess.run([sys.executable, str(study), str(tmp_path / name)], capture_output=True, text=True,
                                    timeout=120)
    plain = runs["plain"]
    assert plain.returncode != 0 and plain.stderr.count("\n") == 1 and "carry no token statistics" in plain.stderr
    assert "strategy.logprobs=20" in plain.stderr and "Traceback" not in plain.stderr
    assert runs["stats"].returncode == 0, runs["stats"].stderr[-2000:]
    assert "| majority | 2 |" in runs["stats"].stdout and "| inverse_entropy | 2 |" in runs["stats"].stdout
    # a run from before self-certainty was recorded: that method is skipped and said so, the others run
    rows = (tmp_path / "stats" / "results.jsonl").read_text().replace('"self_certainty": ', '"old_key": ')
    (tmp_path / "stats" / "results.jsonl").write_text(rows)
    older = subprocess.run([sys.executable, str(study), str(tmp_path / "stats")], capture_output=True, text=True,
                           timeout=120)
    assert older.returncode == 0 and "| inverse_entropy | 2 |" in older.stdout and "self_certainty" not in older.stdout
    assert "self_certainty_borda skipped: " in older.stderr and "self_certainty_best skipped: " in older.stderr
    missing = subprocess.run([sys.executable, str(study), str(tmp_path / "nothing")], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode != 0 and "no results.jsonl" in missing.stderr and "Traceback" not in missing.stderr
