"""Regression tests for numbers that used to be wrong without an error (each failed on the code
before the fix): statistics lost in step-wise search, problems without candidates dropped from
pass@k, negative scores used as weights, verifier FLOPs priced at the policy's size, stop strings
split over two steps, unguided search that looked guided, and one notion of compute."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ttscale.results.curves import scaling_curve
from ttscale.backends.scripted import ScriptedBackend
from ttscale.build import ConfigError, build_strategy, build_verifier
from ttscale.config import group_config
from ttscale.confidence import concat_series, series_stats
from ttscale.runtime import run
from ttscale.results import summarize
from ttscale.strategies import Context, Strategy
from ttscale.strategies.select.deepconf import DeepConfVote
from ttscale.strategies.select.weighted import MissingStatistic, WeightedVote
from ttscale.strategies.step import Node, ParticleFiltering, StepGenerator
from ttscale.types import Candidate, Completion, Problem, Result, SamplingParams, Trajectory, Usage
from ttscale.verifiers.scripted import ScriptedVerifier

PROBLEM = Problem(id="p", question="q", answer="2")


def series(confidence: float, tokens: int = 4) -> dict:
    return {"sampled": [-0.1] * tokens, "confidence": [confidence] * tokens, "entropy": [1.0 / confidence] * tokens,
            "certainty": [confidence - 1.0] * tokens, "topk_entropy": [1.0 / confidence] * tokens}


# 1. token statistics survive step-wise search --------------------------------------------------------

def test_particle_filtering_then_deepconf_keeps_the_statistics(grader):
    """7 of 8 particles answer "2" confidently, one answers "9" with low confidence. Before, the tree
    dropped the statistics, every DeepConf weight was 0 and the tie went to the first group: "9"."""
    def script(prompt, params, i):
        answer, conf = ("9", 1.0) if i == 0 else ("2", 5.0)
        return Completion(f"so \\boxed{{{answer}}}", 4, "stop", -0.4, series=series(conf) if params.keep_series else None)

    backend = ScriptedBackend(script)
    gen = StepGenerator(SamplingParams(temperature=0.8, logprobs=20), max_step_tokens=16, max_steps=4)
    pf = ParticleFiltering(ScriptedVerifier(lambda q, steps: 0.5), n=8, generator=gen, ess_threshold=0.0)
    strategy = Strategy(pf, DeepConfVote(eta=90))
    result = asyncio.run(strategy.solve(PROBLEM, Context(problem=PROBLEM, backend=backend, grader=grader)))
    assert backend.calls[0].params.keep_series  # the step generator asks for the per-token series
    assert result.answer == "2"
    confident = [c for c in result.candidates if c.answer == "2"]
    assert all(c.stats["mean_confidence"] == pytest.approx(5.0) for c in confident)


def test_statistics_accumulate_exactly_over_a_particles_steps():
    first, second = series(2.0, tokens=3), series(6.0, tokens=5)
    node = Node("0", ["a\n\n", "b"], [], True, "stop", [3, 5], [-0.3, -0.5], [first, second])
    expected = series_stats(concat_series([first, second]))
    assert node.trajectory().stats == expected and expected["mean_confidence"] == pytest.approx(4.5)
    assert expected["tokens"] == 8


def test_a_missing_statistic_is_an_error_never_a_weight_of_zero():
    trajectories = [Trajectory("\\boxed{2}", 3, answer="2"), Trajectory("\\boxed{9}", 3, answer="9",
                                                                          stats={"mean_entropy": 0.5})]
    with pytest.raises(MissingStatistic, match="mean_entropy"):
        WeightedVote("inverse_entropy")(trajectories, [0, 1])
    with pytest.raises(MissingStatistic, match="bottom_group_confidence"):
        DeepConfVote()(trajectories, [0, 1])
    with pytest.raises(MissingStatistic, match="verifier score"):
        WeightedVote("score")(trajectories, [0, 1])
    # a sample without an answer does not vote, so it needs no statistic
    assert WeightedVote("inverse_entropy")(trajectories, [None, 1]).index == 1


# 2. problems without candidates count as 0 in pass@k and the curves ------------------------------------

def test_problems_without_candidates_count_zero_in_pass_at_k_and_curves():
    good = Result("a", "2", candidates=[Candidate("", "2", None, 1, "stop", group=0, correct=True),
                                        Candidate("", "2", None, 1, "stop", group=0, correct=True)], correct=True)
    unfinished = Result("b", None, correct=False, info={"no_finished_solution": True})  # graded, nothing to choose
    # an errored problem is not graded: counted in errors, in no denominator (older runs graded it False)
    errored = Result("c", None, correct=False, error="RuntimeError: boom")
    summary = summarize([good, unfinished, errored], 1.0)
    assert summary["accuracy"] == 0.5 and summary["pass_at_k"] == {1: 0.5, 2: 0.5} and summary["pass_at_n"] == 0.5
    assert summary["no_candidates"] == 1 and summary["errors"] == 1 and summary["graded"] == 2
    rows = scaling_curve([good, unfinished, errored])
    assert [r["pass_at_k"] for r in rows] == [0.5, 0.5] and [r["maj_at_k"] for r in rows] == [0.5, 0.5]
    assert rows[0]["no_candidates"] == 1 and rows[0]["problems"] == 2


# 4. scores that cannot be weights are refused ----------------------------------------------------------

def _strategy_cfg(name: str, **overrides) -> dict:
    return {**group_config("strategy", name), **overrides}


@pytest.mark.parametrize("strategy, overrides", [("weighted_vote", {"weight": "score"}), ("particle_filtering", {}),
                                                 ("dvts", {}), ("a_star", {})])
def test_negative_scores_are_refused_as_weights_at_config_time(strategy, overrides):
    with pytest.raises(ConfigError, match="scores as weights in \\[0, 1\\].*verifier=mean_token_prob"):
        build_strategy(_strategy_cfg(strategy, **overrides), {"name": "mean_logprob"})
    build_strategy(_strategy_cfg(strategy, **overrides), {"name": "mean_token_prob"})  # probabilities are fine


def test_negative_weights_are_an_error_at_run_time():
    trajectories = [Trajectory("", answer="2", score=-0.1), Trajectory("", answer="7", score=-3.0)]
    with pytest.raises(MissingStatistic, match="must be finite and >= 0"):
        WeightedVote("score")(trajectories, [0, 1])


# 5. a verifier that is a model of its own needs its own size for FLOPs ---------------------------------

def test_a_separate_verifier_model_needs_its_parameter_count():
    prm = group_config("verifier", "prm")
    with pytest.raises(ConfigError, match="verifier.params is required for verifier=prm"):
        build_verifier({}, {**prm, "path": "x", "format": "math_shepherd"})
    assert group_config("verifier", "qwen_math_prm")["params"] == pytest.approx(7.07e9)


# 6. stop strings split over two steps -------------------------------------------------------------------

def test_a_stop_string_that_spans_a_step_boundary_ends_the_solution():
    """A base model writes its answer, then the delimiter, then invents the next question. The stop
    string "\\nQuestion:" spans the two steps ("...\\n\\n" + "Question: ..."): the backend never sees it."""
    gen = StepGenerator(SamplingParams(temperature=0.8, stop=("\nQuestion:",)), max_step_tokens=32, max_steps=6)
    node = Node("0", ["The answer is 4.\n\n"], [], False, None, [5], [-1.0])
    step = Completion("Question: what is 7 + 5? Answer: 12", 8, "length", -2.0)
    child = gen.child(node, 0, step)
    assert child.finished and child.finish_reason == "stop"
    assert child.text == "The answer is 4.\n" and child.num_tokens == 13  # tokens spent still count
    from ttscale.graders.math import extract_answer

    assert extract_answer(child.text) == "4"


# 7. unguided search that looks guided ------------------------------------------------------------------

def test_self_evaluation_refuses_a_backend_without_top_logprobs():
    backend = ScriptedBackend(lambda p, params, i: "The answer is 2.")
    with pytest.raises(ConfigError, match="verifier=self_eval reads top-k logprobs, and this backend returns none"):
        build_strategy(_strategy_cfg("particle_filtering"), {"name": "self_eval"}, backend)
    # and when it runs anyway (a library call), the problem fails loudly instead of scoring 0.5
    from ttscale.verifiers import SelfEvaluation

    with pytest.raises(RuntimeError, match="no top-k logprobs"):
        asyncio.run(SelfEvaluation(backend).score(PROBLEM, [Trajectory("x")], Usage()))


# one notion of compute ---------------------------------------------------------------------------------

def test_every_run_says_what_its_n_counts_and_tokens_include_the_verifiers(tmp_path):
    from ttscale.analysis.report import leaderboard

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(json.dumps({"strategy": group_config("strategy", "particle_filtering"),
                                                     "verifier": {"name": "prm", "params": 7e9},
                                                     "model": {"params": 1e8}}))
    result = Result("a", "2", correct=True, usage=Usage(prompt_tokens=50, cached_prompt_tokens=30,
                                                          completion_tokens=100, verifier_tokens=400, verifier_calls=8))
    (run_dir / "results.jsonl").write_text(json.dumps(result.to_dict()) + "\n")
    (row,) = leaderboard([run_dir])
    assert row["n_counts"] == "particles" and row["tokens_per_problem"] == 500
    assert row["fresh_prompt_tokens_per_problem"] == 20 and row["verifier_calls_per_problem"] == 8
    # FLOPs: the verifier's tokens at its own size
    assert row["flops_per_problem"] == pytest.approx(2 * 1e8 * (100 + 20) + 2 * 7e9 * 400)


def test_a_scripted_leaderboard_at_a_matched_token_budget(tmp_path):
    """Each strategy's own knob is calibrated to about 40 generated tokens per problem (the scripted
    model writes 10 tokens a sample): self-consistency and best-of-n with 4 samples, particle filtering
    with 4 particles, beam search with 4 beams of width 2."""
    out = tmp_path / "lb"
    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "evals" / "leaderboard.py"), "--out", str(out),
               "--strategies", "self_consistency,best_of_n,particle_filtering,beam_search", "--token-budget", "40",
               "--pilot-n", "2", "--baseline", "self_consistency", "--", "backend=scripted", "dataset.limit=3", "verifier=mean_token_prob",
               "strategy.beam_width=2"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "matched_budget.md").read_text()
    assert table.startswith("Matched on generated tokens per problem: 40.")
    rows = [line.split("|")[1:-1] for line in table.splitlines()[4:]]
    assert {r[0].strip(): int(r[1]) for r in rows} == {"self_consistency": 4, "best_of_n": 4, "particle_filtering": 4,
                                                       "beam_search": 4}
    assert all(abs(float(r[3]) - 40) <= 4 for r in rows)
    assert {r[2].strip() for r in rows} == {"samples", "particles", "beams"}
    board = (out / "leaderboard.md").read_text()
    assert board.startswith("Matched compute: generated tokens per problem, 40 (matched_budget.md).")
    assert "| n counts |" in board and "particles" in board
    pairs = (out / "comparisons.md").read_text()  # every cell paired against self-consistency
    assert "Paired against self_consistency@4" in pairs and pairs.count("\n| ") == 4


def test_budgets_match_generated_plus_verifier_tokens_or_flops(tmp_path, monkeypatch):
    """The calibration on each measure, on made runs: a cell of n spends 10 n generated and 30 n
    verifier tokens per problem (a guided search reading 3x what it writes)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("leaderboard", Path(__file__).resolve().parents[1] / "evals" / "leaderboard.py")
    board = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(board)
    params = {}

    def run_cell(strategy, n, run_dir, extra):
        run_dir.mkdir(parents=True, exist_ok=True)
        usage = Usage(completion_tokens=10 * n, verifier_tokens=30 * n, prompt_tokens=0)
        lines = [json.dumps(Result(problem_id=str(i), answer="1", usage=usage).to_dict()) for i in range(2)]
        (run_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
        (run_dir / "config.yaml").write_text(json.dumps({"strategy": {"name": strategy, "n": n}, "model": params}))

    monkeypatch.setattr(board, "run_cell", run_cell)
    (on_tokens,) = board.matched_budget(["self_consistency"], 320, "tokens", 2, 3, tmp_path / "a", [])
    assert on_tokens["n"] == 8 and on_tokens["tokens"] == 320 and on_tokens["generated"] == 80
    (on_generated,) = board.matched_budget(["self_consistency"], 320, "generated", 2, 3, tmp_path / "b", [])
    assert on_generated["n"] == 32 and on_generated["tokens"] == 1280  # 4x the compute, "matched"
    assert (tmp_path / "a" / "matched_budget.md").read_text().startswith(
        "Matched on generated + verifier tokens per problem: 320.")
    with pytest.raises(SystemExit, match="needs the model's size: set model.params"):
        board.matched_budget(["self_consistency"], 1e12, "flops", 2, 3, tmp_path / "c", [])
    params["params"] = 1e9  # 2 x 1e9 x 40 n FLOPs per problem: n = 4 for 3.2e11
    (on_flops,) = board.matched_budget(["self_consistency"], 3.2e11, "flops", 2, 3, tmp_path / "d", [])
    assert on_flops["n"] == 4 and on_flops["flops"] == pytest.approx(3.2e11)


def test_a_sample_without_its_logprob_is_an_error_not_a_score():
    from ttscale.verifiers.logprob import MeanLogprob, MeanTokenProbability

    missing, empty = Trajectory("four words of text", 4), Trajectory("", 0)
    for verifier in (MeanLogprob(), MeanTokenProbability()):
        with pytest.raises(ValueError, match="no logprob"):
            asyncio.run(verifier.score(PROBLEM, [missing]))
    assert [s.value for s in asyncio.run(MeanTokenProbability().score(PROBLEM, [empty]))] == [0.0]
