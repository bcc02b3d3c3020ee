"""GenSelect, worked by hand on scripted judges: the prompt the code builds, the verdict parsed
strictly (an unparsed one is undecided and counted), the majority over judgments, and a knockout."""

import asyncio
import re

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.graders import MathGrader
from ttscale.strategies import Context, ParallelSampling, Strategy
from ttscale.strategies.select.genselect import GenSelect, verdict
from ttscale.types import Problem, SamplingParams, Trajectory

PROBLEM = Problem(id="p", question="What is 3 + 4?", answer="7", messages=[{"role": "user", "content": "What is 3 + 4?"}])
SAMPLES = ["<think>hmm</think>So \\boxed{5}.", "It is \\boxed{7}.", "<think>x</think>Then \\boxed{5}.",
           "Surely \\boxed{5}.", "Clearly \\boxed{9}."]  # the majority says 5


def picks(answer: str):
    """A judge that names the shown solution whose answer is `answer` (by its 0-based number)."""
    def judge(prompt, params, index):
        if "candidate solutions" not in prompt:
            return SAMPLES[index % len(SAMPLES)]
        shown = dict(re.findall(r"Solution (\d+): .*?\\boxed\{(\w+)\}", prompt))
        best = next((i for i, a in shown.items() if a == answer), "0")
        return f"Solution {best} is right.\nJudgment: {best}"
    return judge


def solve(script, **kw):
    backend = ScriptedBackend(script)
    with MathGrader() as grader:
        ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
        strategy = Strategy(ParallelSampling(5, SamplingParams(temperature=0.8)), GenSelect(**kw))
        return asyncio.run(strategy.solve(PROBLEM, ctx)), backend


def test_the_verdict_is_the_last_judgment_in_range():
    assert verdict("Solution 1 looks good. Judgment: 2", 3) == 2
    assert verdict("Judgement: 0", 3) == 0  # the code's regex accepts this spelling; 0 is an index, not a failure
    assert verdict("Judgment: 1 ... on reflection, Judgment: 0", 3) == 0
    assert verdict("Judgment: 3", 3) is None and verdict("I pick the second one.", 3) is None
    assert verdict("Judgment: [1]", 3) is None  # the format is "Judgment: 1" (the prompt says so)


def test_the_judge_overrules_the_majority_and_sees_the_codes_prompt():
    result, backend = solve(picks("7"), judgments=3)
    assert result.answer == "7" and result.info["judge_calls"] == 3 and result.info["unparsed"] == 0
    judge_prompts = [c.prompt for c in backend.calls if "candidate solutions" in c.prompt]
    prompt = judge_prompts[0]
    assert prompt.startswith("You will be given a problem followed by an enumerated list of 5 candidate solutions.")
    assert "Problem: What is 3 + 4?" in prompt and "index 0-4 of the best solution" in prompt
    assert "Solution 0: " in prompt and "Solution 4: " in prompt and "Solution 5:" not in prompt
    assert "<think>" not in prompt and "hmm" not in prompt  # each shown by its text after </think>
    assert len(set(judge_prompts)) == 3  # each judgment its own seeded order
    # the judge calls are policy calls, counted: 1 sampling call + 3 judgments
    assert result.usage.backend_calls == 4


def test_an_unparsed_verdict_is_undecided_and_counted_never_a_default_pick():
    def mute(prompt, params, index):
        return "I cannot decide." if "candidate solutions" in prompt else SAMPLES[index % len(SAMPLES)]

    result, _ = solve(mute, judgments=4)
    assert result.answer is None and result.info["unparsed"] == 4 and result.info["reason"] == "no judgment could be parsed"
    coded, _ = solve(mute, judgments=4, unparsed="random")  # the code's random pick
    assert coded.answer in {"5", "7", "9"} and coded.info["unparsed"] == 4


def test_a_knockout_judges_rounds_of_k_until_one_is_left():
    result, backend = solve(picks("7"), mode="knockout", window=2)
    # 5 candidates in groups of 2: [2, 2, 1] -> 3 left, [2, 1] -> 2, [2] -> 1: 2 + 1 + 1 judge calls
    assert result.info["judge_calls"] == 4 and result.info["rounds"] == 3 and result.answer == "7"
    twice, _ = solve(picks("7"), mode="knockout", window=2, orderings=2)
    assert twice.info["judge_calls"] == 8 and twice.answer == "7"


def test_genselect_refuses_to_run_outside_a_strategy_and_bad_settings():
    with pytest.raises(TypeError, match="calls the model"):
        GenSelect()([Trajectory("a")], [0])
    with pytest.raises(ValueError, match="window=1"):
        GenSelect(window=1)
    with pytest.raises(ValueError, match="mode='tournament'; choose one of: sample, knockout"):
        GenSelect(mode="tournament")


def test_genselect_runs_from_the_command_line_on_the_demo_model(tmp_path):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ttscale.cli", "backend=demo", "strategy=genselect", "strategy.n=8",
                           "strategy.judgments=4", "dataset.limit=6", "progress=false", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert all(r["info"]["judge_calls"] == 4 and r["info"]["unparsed"] == 0 for r in rows)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["accuracy"] >= 0.5 and summary["backend_calls"] == 6 * (1 + 4)


def test_reselect_judges_a_finished_runs_own_samples_and_counts_the_judge(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    run, out = tmp_path / "sc", tmp_path / "gs"
    proc = subprocess.run([sys.executable, "-m", "ttscale.cli", "backend=demo", "strategy=self_consistency", "strategy.n=4",
                           "dataset.limit=3", "progress=false", f"hydra.run.dir={run}"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    script = Path(__file__).resolve().parents[1] / "evals" / "reselect.py"
    proc = subprocess.run([sys.executable, str(script), str(run), "--select", "genselect", "--out", str(out),
                           "--set", "strategy.judgments=2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = {r["problem_id"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}
    after = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in after:  # the same samples, judged twice each; the judge's calls are in usage
        b = before[r["problem_id"]]
        assert [c["text"] for c in r["candidates"]] == [c["text"] for c in b["candidates"]]
        assert r["info"]["judge_calls"] == 2 and r["usage"]["backend_calls"] == b["usage"]["backend_calls"] + 2
        assert r["usage"]["completion_tokens"] > b["usage"]["completion_tokens"]
    assert json.loads((out / "summary.json").read_text())["select"] == "genselect"


def test_a_winner_without_an_answer_does_not_vote_and_the_judge_takes_the_runs_top_p():
    """#37: NeMo-Skills drops judged winners that have no answer before the majority. Samples: one
    without an answer (favoured by 3 of 5 judgments), one saying 7 (2 judgments): 7 is chosen, not
    an unanswered problem. The judge samples with the run's top_p (the code inherits it)."""
    samples = ["I could not finish the", "It is \\boxed{7}.", "Clearly \\boxed{9}."]
    calls = []

    def judge(prompt, params, index):
        if "candidate solutions" not in prompt:
            return samples[index]
        calls.append(params)
        shown = re.findall(r"Solution (\d+): (.*?)(?=\n\nSolution \d+:|\n\nEnd your evaluation)", prompt, re.S)
        unfinished = next(i for i, text in shown if "could not finish" in text)
        seven = next(i for i, text in shown if "{7}" in text)
        return f"Judgment: {unfinished if len(calls) <= 3 else seven}"

    backend = ScriptedBackend(judge)
    with MathGrader() as grader:
        ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
        strategy = Strategy(ParallelSampling(3, SamplingParams(temperature=0.8)), GenSelect(judgments=5, judge_top_p=0.95))
        result = asyncio.run(strategy.solve(PROBLEM, ctx))
    assert result.answer == "7" and result.info["winners_without_answer"] == 3
    assert {p.top_p for p in calls} == {0.95}
    from ttscale.build import build_strategy
    from ttscale.config import group_config

    built = build_strategy({**group_config("strategy", "genselect"), "top_p": 0.8}).select
    assert built.judge_top_p == 0.8  # strategy.top_p, the run's
