"""Standard input / output tasks (#34): rows in CodeContests', LiveCodeBench's and ttscale's layouts,
programs run as whole programs on each input in the sandbox, outputs compared as LiveCodeBench does."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import zlib

import pytest

from ttscale.data.loaders import DatasetError, DatasetSpec, load_problems
from ttscale.graders.code.feedback import run_visible
from ttscale.graders.code.grader import CodeGrader, task_of
from ttscale.graders.code.sandbox import Limits, Sandbox
from ttscale.graders.code.stdio import COMPARE
from ttscale.types import Problem


@pytest.fixture(scope="module")
def problems():
    return {p.id: p for p in load_problems(DatasetSpec(source="fixture:stdio_5", format="stdio"))}


@pytest.fixture(scope="module")
def grader():
    return CodeGrader(Sandbox("auto", Limits(timeout=5, cpu_seconds=5), parallel=2))


def grade(grader, problem: Problem, program: str):
    return asyncio.run(grader.run_tests(program, problem))


def test_rows_in_three_layouts(problems):
    assert sorted(problems) == ["stdio/add", "stdio/average", "stdio/list-sum", "stdio/max-each", "stdio/reverse-words"]
    add = task_of(problems["stdio/add"])
    assert add.visible_tests == ("assert outputs_match(run_stdio('1 2\\n'), '3\\n')",)  # the example, shown
    assert len(add.tests) == 4 and add.tests[0] == add.visible_tests[0]  # every test grades, the example too
    assert task_of(problems["stdio/list-sum"]).probes == ("run_stdio('3\\n1 2 3\\n')",)  # inputs for voting
    words = task_of(problems["stdio/reverse-words"])  # LiveCodeBench: the private tests were packed
    assert "run_stdio('one two three\\n'), 'three two one\\n'" in words.tests[-1]
    first = load_problems(DatasetSpec(source="fixture:stdio_5", format="stdio", visible_tests=1, limit=1))[0]
    assert task_of(first).visible == (0,) and task_of(first).examples == ()


@pytest.mark.parametrize("row, message", [
    ({"id": "x", "question": "q"}, "no tests"),
    ({"id": "x", "tests": [{"input": "1", "output": "1"}]}, "no problem statement"),
    ({"question_id": "x", "question_content": "q", "public_test_cases": json.dumps(
        [{"input": "[1]", "output": "1", "testtype": "functional"}])}, "a 'functional' test"),
    ({"name": "x", "description": "q", "public_tests": {"input": ["1"], "output": []}}, "1 inputs and 0 outputs"),
    ({"question_id": "x", "question_content": "q",
      "private_test_cases": base64.b64encode(zlib.compress(pickle.dumps(os.system))).decode()}, "only plain data is read"),
])
def test_malformed_rows_are_named(tmp_path, row, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"id": "ok", "question": "q", "tests": [{"input": "1", "output": "1"}]}) + "\n"
                    + json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match=f"rows.jsonl:2: stdio row cannot be turned into tests: .*{message}"):
        load_problems(DatasetSpec(source=str(path), format="stdio"))


def test_outputs_are_compared_as_livecodebench_compares():
    namespace: dict = {}
    exec(COMPARE, namespace)
    match = namespace["outputs_match"]
    assert match("3\n", "3") and match("  3  \n\n", "3\n") and match("1 2\n3\n", "1 2\r\n3")
    assert match("1.50\n", "1.5") and match("2 1.0\n", "2 1")  # token by token as decimals, no tolerance
    assert not match("1.51\n", "1.5") and not match("3\n4\n", "3\n") and not match("1 2", "1  2 3")
    assert not match("yes", "YES") and not match(b"3", "3") and not match(None, "3")


PROGRAMS = {  # correct programs of the kinds competitive code comes in
    "input()": "a, b = map(int, input().split())\nprint(a + b)\n",
    "sys.stdin.buffer": "import sys\na, b = map(int, sys.stdin.buffer.read().split())\nsys.stdout.write(f'{a + b}\\n')\n",
    "open(0) and exit()": "a, b = map(int, open(0).read().split())\nprint(a + b)\nexit()\n",
    "a __main__ guard": "import sys\ndef main():\n    print(sum(map(int, sys.stdin.readline().split())))\n\n"
                        "if __name__ == '__main__':\n    main()\n",
    "stdout.buffer": "import sys\nsys.stdout.buffer.write(str(sum(map(int, input().split()))).encode())\n",
}


@pytest.mark.parametrize("kind", sorted(PROGRAMS))
def test_correct_programs_of_each_kind_pass(problems, grader, kind):
    verdict = grade(grader, problems["stdio/add"], PROGRAMS[kind])
    assert verdict.status == "pass", verdict


def test_wrong_and_failing_programs_do_not_pass(problems, grader):
    add = problems["stdio/add"]
    assert grade(grader, add, "a, b = map(int, input().split())\nprint(a * b)\n").status == "fail"
    exits = grade(grader, add, "import sys\nsys.exit(1)\n")
    assert exits.status != "pass" and "exited with 1" in exits.tests[0].error
    # each test's run starts from fresh globals: a name left by the last run is not there
    fresh = "try:\n    runs += 1\nexcept NameError:\n    runs = 0\nprint(sum(map(int, input().split())) + runs)\n"
    assert grade(grader, add, fresh).status == "pass"
    flood = grade(grader, add, "while True:\n    print('x' * 10000)\n")
    assert flood.status != "pass"
    average = problems["stdio/average"]
    assert grade(grader, average, "n = int(input())\nxs = list(map(int, input().split()))\n"
                                  "print(f'{sum(xs) / n:.2f}')\n").status == "pass"


def test_self_debugging_feedback_shows_what_the_program_printed(problems, grader):
    problem = problems["stdio/add"]
    feedback = asyncio.run(run_visible(grader, "a, b = map(int, input().split())\nprint(a - b)\n", problem,
                                       task_of(problem).visible_tests))
    assert feedback.report() == ("[Test 1] assert outputs_match(run_stdio('1 2\\n'), '3\\n')\n"
                                 "Failed: run_stdio('1 2\\n') returned '-1\\n'.")


@pytest.mark.integration
def test_stdio_problems_on_the_cpu_engine(vllm_backend, tmp_path):
    """The real engine writes whole programs for the five fixture problems; each is extracted, run on
    every input in the sandbox and graded with no error (the session's shared engine, the job built as
    the CLI builds it)."""
    from engine_jobs import run_job

    summary, rows = run_job(vllm_backend, ["dataset=stdio_fixture", "strategy.n=2", "strategy.max_tokens=200"],
                            tmp_path)
    assert summary["errors"] == 0 and summary["graded"] == 5, summary
    verdicts = [c["verdict"] for row in rows for c in row["candidates"] if c["answer"]]
    assert verdicts and all(v["status"] in ("pass", "fail", "error", "timeout") for v in verdicts)
    assert any(v["status"] == "pass" or v.get("tests") for v in verdicts)  # the programs ran on the tests


EVALPLUS_TEST = '''
import numpy as np

def is_floats(x) -> bool:
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    return False

def assertion(out, exp, atol):
    exact_match = out == exp
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        assert np.allclose(out, exp, rtol=1e-07, atol=atol)
    else:
        assert exact_match

def check(candidate):
    inputs = [[2.0, 3.0], [0.1, 0.2], [10.0, -10.0]]
    results = [6.0, 0.02, -100.0]
    for i, (inp, exp) in enumerate(zip(inputs, results)):
        assertion(candidate(*inp), exp, 0)
'''


def test_humaneval_plus_rows_by_local_path(tmp_path, grader):
    """evalplus's layout (HumanEval+ / MBPP+: a check(candidate) looping `assertion(...)` over its
    inputs, with numpy) loads with dataset.format=humaneval and grades: a float answer within the
    tolerance passes, a wrong one fails."""
    prompt = 'def product(a: float, b: float) -> float:\n    """Return a times b.\n    >>> product(2.0, 3.0)\n    6.0\n    """\n'
    row = {"task_id": "HumanEval/plus-demo", "prompt": prompt, "entry_point": "product", "test": EVALPLUS_TEST,
           "canonical_solution": "    return a * b\n", "base_input": [[2.0, 3.0]], "atol": 0}
    path = tmp_path / "HumanEvalPlus.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (problem,) = load_problems(DatasetSpec(source=str(path), format="humaneval"))
    assert len(task_of(problem).tests) == 1 and task_of(problem).visible_tests == ("assert product(2.0, 3.0) == 6.0",)
    assert grade(grader, problem, prompt + "    return a * b * (1 + 1e-12)\n").status == "pass"
    assert grade(grader, problem, prompt + "    return a + b\n").status == "fail"
