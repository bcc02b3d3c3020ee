"""Recursive self-aggregation (#37), worked by hand on the scripted backend: the populations, the
subsets each aggregation sees (drawn without replacement, seeded), the prompt, the final vote; and a
run on the CPU engine."""

from __future__ import annotations

import asyncio
import re

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.graders import MathGrader
from ttscale.strategies import Context, MajorityVote, Strategy
from ttscale.strategies.search.rsa import RSA, aggregation_prompt
from ttscale.types import Problem, SamplingParams

PROBLEM = Problem(id="p", question="What is 3 + 4?", answer="7", messages=[{"role": "user", "content": "What is 3 + 4?"}])
SHOWN = re.compile(r"--- Solution \d+ ---\n(.*?)(?=\n\n--- Solution|\n\nNow write)", re.S)


def solve(search, script):
    backend = ScriptedBackend(script)
    with MathGrader() as grader:
        ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
        result = asyncio.run(Strategy(search, MajorityVote()).solve(PROBLEM, ctx))
    return result, backend


def test_each_loop_aggregates_k_members_of_the_last_population():
    """N = 4, K = 2, T = 3. The first population says 5, 7, 7, 9 (labelled a0..a3); an aggregation
    answers with the largest answer among those it was shown, so the population drifts up; the last
    population votes. Every aggregation prompt shows K distinct members of the loop before."""
    first = ["a0: \\boxed{5}", "a1: \\boxed{7}", "a2: \\boxed{7}", "a3: \\boxed{9}"]
    seen: list[list[str]] = []

    def script(prompt, params, index):
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        if "candidate solution" not in text:
            return first[index]
        shown = SHOWN.findall(text)
        seen.append(shown)
        best = max(int(x) for s in shown for x in re.findall(r"\\boxed\{(\d+)\}", s))
        return f"agg{len(seen)}: \\boxed{{{best}}}"

    result, backend = solve(RSA(n=4, k=2, loops=3, params=SamplingParams(temperature=1.0)), script)
    assert [c.params.n for c in backend.calls] == [4] + [1] * 8  # N first, then N per later loop
    assert len(seen) == 8 and all(len(s) == 2 and len(set(s)) == 2 for s in seen)  # K distinct members
    assert all(set(s) <= set(first) for s in seen[:4])  # loop 2 sees the first population
    assert all(s[0].startswith("agg") and s[1].startswith("agg") for s in seen[4:])  # loop 3 sees loop 2's
    assert len(result.candidates) == 4 and result.info["loops"] == 3 and result.info["final_population"] == 4
    answers = [c.answer for c in result.candidates]
    assert result.answer == max(set(answers), key=answers.count)  # the final population votes
    assert result.usage.backend_calls == 9
    # the aggregation: the problem, then the solutions
    aggregations = [c.prompt if isinstance(c.prompt, str) else c.prompt[-1]["content"] for c in backend.calls[1:]]
    assert all("Problem:\nWhat is 3 + 4?\n\n--- Solution 1 ---" in p for p in aggregations)
    assert RSA.render(Context(problem=PROBLEM, backend=backend, grader=None), "X") == [{"role": "user", "content": "X"}]
    before = [list(x) for x in seen]
    seen.clear()
    solve(RSA(n=4, k=2, loops=3, params=SamplingParams(temperature=1.0)), script)
    assert seen == before  # the subsets are seeded (run seed, problem, loop): the same again


def test_k_one_refines_and_the_gensynthesis_case():
    prompts = []

    def script(prompt, params, index):
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        prompts.append(text)
        return "\\boxed{7}" if "candidate solution" in text else f"s{index}: \\boxed{{{index}}}"

    solve(RSA(n=3, k=1, loops=2, params=SamplingParams(temperature=1.0)), script)
    refinements = [p for p in prompts if "candidate solution" in p]
    assert len(refinements) == 3 and all("a candidate solution to it" in p and p.count("--- Solution") == 1
                                         for p in refinements)
    prompts.clear()
    result, backend = solve(RSA(n=3, k=3, loops=2, last_population=1, params=SamplingParams(temperature=1.0)), script)
    assert len(backend.calls) == 2 and len(result.candidates) == 1 and result.answer == "7"  # GenSynthesis
    (synthesis,) = [p for p in prompts if "candidate solution" in p]
    assert synthesis.count("--- Solution") == 3 and "3 candidate solutions" in synthesis


def test_the_prompt_and_bad_settings():
    text = aggregation_prompt("Q?", ["one", "two"])
    assert text.startswith("Below is a problem and 2 candidate solutions") and text.endswith("in \\boxed{}.")
    assert "--- Solution 1 ---\none\n\n--- Solution 2 ---\ntwo" in text
    assert "```python" in aggregation_prompt("def f():", ["x"], code=True)
    for bad in ({"k": 5, "n": 4}, {"k": 0}, {"loops": 0}, {"last_population": 9, "n": 4}):
        with pytest.raises(ValueError):
            RSA(**bad)


@pytest.mark.integration
def test_rsa_on_the_cpu_engine(vllm_backend, tmp_path):
    """RSA on the real engine (the test session's shared engine, the job built as the CLI builds it)."""
    from engine_jobs import run_job

    summary, rows = run_job(vllm_backend, ["strategy=rsa", "strategy.n=2", "strategy.k=2", "strategy.loops=2",
                                           "strategy.max_tokens=96", "dataset.limit=2"], tmp_path)
    assert summary["errors"] == 0 and summary["problems"] == 2, summary
    for row in rows:
        assert len(row["candidates"]) == 2 and row["info"]["loops"] == 2
        assert row["usage"]["backend_calls"] == 1 + 2  # the first population, then one call per member
        # the first population's tokens are counted too, beyond the final population's
        assert row["usage"]["completion_tokens"] > sum(c["num_tokens"] for c in row["candidates"])
