import asyncio
import itertools
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ttscale.graders.math import (MathGrader, MathSettings, extract_answer, grade_batch, group_answers, is_equivalent,
                                  normalize_answer)
from ttscale.graders.pool import WorkerError, WorkerPool


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),  # nested braces
        ("first \\boxed{3}, then corrected: \\boxed{4}", "4"),  # a correction: its last box (#35)
        ("first \\boxed{3}, and then \\boxed{4}", "3,4"),  # several boxes: one set (Math-Verify's rule)
        ("\\boxed{a \\boxed{3}} and \\fbox{\\{1,2\\}}", "3,\\{1,2\\}"),
        ("\\framebox{204}", "204"),
        ("\\boxed 7 done", "7"),
        ("Natalia sold 48/2 = 24 clips.\n#### 2,125", "2125"),
        ("Final Answer: $x = 3$", "x = 3"),
        ("So the answer is 18 dollars.", "18"),  # the answer, not the prose after it
        ("The answer is: 42.", "42"),
        ("I count 3 apples and then 4,000 pears", "4000"),
        ("no digits here", None),
        ("", None),
        (None, None),
        # Minerva's format: the answer, not the whole phrase
        ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
        ("Final Answer: The final answer is 12. I hope it is correct.", "12"),
        # a later final-answer line beats an earlier intermediate box
        ("We get \\boxed{5} for x.\nThen y = 2x, so the answer is 10.", "5"),  # a box comes first (Math-Verify)
        ("The answer is 3.5 cm.", "3.5"),
        # the last-number fallback returns nothing when it is not sure
        ("so it is $\\frac12$", "\\frac{1}{2}"),  # inline math is an answer (the whole formula)
        ("so it is $2\\frac{1}{2}$", "2\\frac{1}{2}"),
        ("the point is (7, 6)", None),
        ("Answer: 2, 3", "2, 3"),  # one number of a list is never the answer: the whole list is
        ("the roots are 2, 3", None),
        ("unbalanced \\boxed{3 and more", "\\boxed{3 and more"),  # cut off: as written, its check undecided
        ("the value 0,111 here", "0.111"),  # a decimal comma (Math-Verify's reading)
        ("So, 14", "14"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_truncated_output_has_no_fallback_answer():
    text = "First we add 3 and 4 to get 7, then we multiply by"
    assert extract_answer(text) == "7" or extract_answer(text) is None
    assert extract_answer(text, finished=False) is None
    assert extract_answer("... \\boxed{7}", finished=False) == "7"  # an explicit answer still counts
    assert extract_answer("the total is 7", fallback="none") is None


@pytest.mark.parametrize(
    "gold, pred, expected",
    [
        ("1/2", "0.5", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{1}{2}", "1/2", True),
        ("50\\%", "50", True),
        ("50%", "50", True),
        ("2,125", "2125", True),
        ("025", "25", True),  # AIME leading zeros compare numerically
        ("-3", "-3.0", True),
        ("18", "18 dollars", True),
        ("18", "18 \\text{ dollars}", True),
        ("\\$18", "18", True),
        ("(1,2]", "(1, 2]", True),  # intervals
        ("[1,2)", "(1,2)", False),
        ("3", "4", False),
        ("0.33", "1/3", False),
        ("\\sqrt{4}", "2", True),  # symbolic: math-verify in a worker
        ("x^2+2x+1", "(x+1)^2", True),
        ("\\frac{\\pi}{2}", "\\pi/2", True),
        ("\\{1,2\\}", "\\{2,1\\}", True),
        ("x+1", "x+2", False),
        ("7", None, False),
        # trailing letters are not units
        ("2", "2x", False),
        ("4", "4n", False),
        ("2", "2pi", False),
        ("2", "2 pi", False),
        ("5", "5 i", False),
        ("1", "1e", False),
        # a comma that is not a thousands separator
        ("111", "0,111", False),
        # one numeric-tolerance policy for rationals and irrationals (math-verify's float_rounding)
        ("\\frac{1}{12}", "0.0833333333333333", True),
        ("\\sqrt2", "1.41421356", True),
    ],
)
def test_is_equivalent(grader, gold, pred, expected):
    assert grader.equivalent(gold, pred) is expected


def test_module_level_is_equivalent_and_batch():
    assert is_equivalent("\\frac{1}{2}", "0.5")
    assert is_equivalent("\\sqrt{9}", "3")
    assert grade_batch([("1", "1"), ("\\sqrt{2}", "2^{1/2}"), ("x", "y")], workers=2) == [True, True, False]


def test_normalize():
    assert normalize_answer(" $\\text{5}$. ") == "5"
    assert normalize_answer("90^\\circ") == "90"
    assert normalize_answer("50\\%", percent="ratio") == "50/100"


def test_settings_are_options():
    assert is_equivalent("50\\%", "0.5") is False
    assert is_equivalent("50\\%", "0.5", percent="ratio") is True
    assert is_equivalent("50\\%", "50", percent="ratio") is False
    assert is_equivalent("50\\%", "0.5", percent="either") and is_equivalent("50\\%", "50", percent="either")
    assert is_equivalent("(-\\infty,3]", "x \\le 3") is False  # math-verify's default: one way only
    assert is_equivalent("(-\\infty,3]", "x \\le 3", allow_set_relation=True) is True
    with pytest.raises(ValueError, match="percent='half'; choose one of: strip, ratio, either"):
        MathSettings(percent="half")


def test_grouping_by_equivalence(grader):
    labels = grader.group(["1/2", "0.5", "\\frac{1}{2}", "3", "x+1", "1+x", None])
    assert labels == [0, 0, 0, 1, 2, 2, None]


def test_grouping_does_not_depend_on_the_order():
    """math-verify's checks are one-way (`x \\le 3` accepts `(-\\infty,3]`, not the other way round):
    groups must be the same partition in every order."""
    answers = ["x \\le 3", "(-\\infty,3]", "3", "\\frac{6}{2}", "x<3"]
    settings = MathSettings(allow_set_relation=True)

    def partition(order):
        labels = group_answers([answers[i] for i in order], settings)
        return frozenset(frozenset(answers[i] for i, lab in zip(order, labels) if lab == g) for g in set(labels))

    partitions = {partition(order) for order in itertools.permutations(range(len(answers)))}
    assert len(partitions) == 1
    (only,) = partitions
    assert frozenset({"x \\le 3", "(-\\infty,3]"}) in only and frozenset({"3", "\\frac{6}{2}"}) in only


def test_timeout_is_undecided_not_false_and_the_pool_recovers():
    with MathGrader(workers=1, timeout=2.0) as g:
        g.equivalent("\\sqrt{4}", "2")  # start the worker first
        # a power tower is refused before any work: undecided, counted, with its reason
        assert g.checks([("2", "9^{9^{9^{9^{9}}}}")]) == [(None, "too costly to evaluate (a power tower)")]
        assert g.stats()["undecided_checks"] == 1 and g.pool.timeouts == 0
        # a check that outlives its bound: its worker is killed, the verdict undecided
        assert g.pool.call(time.sleep, 0) is None
        with pytest.raises(WorkerError):
            g.pool.call(time.sleep, 30)
        assert g.pool.timeouts == 1
        # the pool replaced the killed worker and keeps working
        assert g.equivalent("\\sqrt{16}", "4") is True


def test_a_worker_that_cannot_start_is_undecided_and_frees_its_slot(monkeypatch):
    from ttscale.graders import pool as pool_module

    real = pool_module._Worker.__init__
    calls = {"n": 0}

    def flaky(self, initializer):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(24, "Too many open files")
        real(self, initializer)

    monkeypatch.setattr(pool_module._Worker, "__init__", flaky)
    with MathGrader(workers=1, timeout=5.0) as g:
        assert g.equivalent("\\sqrt{4}", "2") is None  # could not run: undecided, never False
        assert "could not start" in g.last_reason
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("v", g.equivalent("\\sqrt{4}", "2")))
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the next call hung"
        assert result["v"] is True


@pytest.mark.parametrize("how", ["stdin", "unguarded script"])
def test_the_pool_works_without_a_main_guard(tmp_path, how):
    code = textwrap.dedent("""
        from ttscale import is_equivalent
        from ttscale.graders.math import grade_batch
        print(is_equivalent("\\\\sqrt{4}", "2"), grade_batch([("\\\\sqrt{9}", "3"), ("x", "y")]))
    """)
    if how == "stdin":
        proc = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
    else:
        script = tmp_path / "check.py"
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.stdout.strip() == "True [True, False]", proc.stderr[-2000:]


@pytest.mark.parametrize("gold, pred", [("1", "1" * 20000), ("1", "1" * 100_000), ("1" * 30000, "1" * 30000 + "1"),
                                        ("x", "\\frac{" * 5000), ("\\sqrt{2}", "(" * 3000 + "2" + ")" * 3000)])
def test_huge_answers_are_decided_or_undecided_in_bounded_time(grader, gold, pred):
    t0 = time.perf_counter()
    verdict = grader.equivalent(gold, pred)
    assert time.perf_counter() - t0 < 2
    assert verdict in (False, None)
    assert grader.equivalent("1" * 30000, "1" * 30000) is True


@pytest.mark.parametrize("text", ["\\boxed{" * 8000, "\\boxed{" * 150_000 + "1", "{" * 500_000 + "}" * 10,
                                  "1, " * 200_000, "x" * 1_000_000 + " final answer is " * 1000])
def test_extraction_of_hostile_outputs_is_fast(text):
    t0 = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - t0 < 3


def test_close_while_a_check_is_in_flight_kills_its_worker():
    pool = WorkerPool(size=1, timeout=60, initializer="ttscale.graders.math_symbolic:_init_worker")
    pool.call(time.sleep, 0)
    (worker,) = pool._live
    outcome = {}

    def long_call():
        try:
            pool.call(time.sleep, 30)
        except WorkerError as exc:
            outcome["kind"] = exc.kind

    thread = threading.Thread(target=long_call)
    thread.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    pool.close()
    thread.join(10)
    assert not thread.is_alive() and time.perf_counter() - t0 < 5
    assert outcome["kind"] == "died"
    assert worker.proc.poll() is not None  # the worker process is gone


def test_a_cancelled_async_check_frees_its_worker():
    pool = WorkerPool(size=1, timeout=60)

    async def scenario():
        await pool.acall(time.sleep, 0)
        task = asyncio.create_task(pool.acall(time.sleep, 30))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = time.perf_counter()
        await pool.acall(time.sleep, 0)  # the only worker is free again at once (a fresh one)
        return time.perf_counter() - t0

    try:
        assert asyncio.run(scenario()) < 10
    finally:
        pool.close()


def test_grading_from_threads(grader):
    from concurrent.futures import ThreadPoolExecutor

    pairs = [("\\sqrt{4}", "2"), ("x", "y")] * 4
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: grader.equivalent(*p), pairs))
    assert results == [True, False] * 4


def test_batch_grading_many(grader):
    pairs = [(str(i), f"{i}.0") for i in range(2000)] + [("\\sqrt{2}", "\\sqrt{2}"), ("\\sqrt{8}", "2\\sqrt{2}")]
    assert all(grader.grade_batch(pairs))


def test_undecided_verdicts_are_counted_in_the_summary():
    from ttscale.backends.scripted import ScriptedBackend
    from ttscale.strategies.strategy import self_consistency
    from ttscale.types import Problem, SamplingParams
    import ttscale

    problems = [Problem("a", "q", answer="1" * 5000), Problem("b", "q", answer="7")]
    backend = ScriptedBackend(lambda prompt, params, i: "The answer is 7.")
    strategy = self_consistency(n=2, params=SamplingParams(max_tokens=8))
    with MathGrader(workers=1) as g:
        outcome = ttscale.run(strategy, problems, backend, grader=g, progress=False)
    a, b = outcome.results
    assert a.correct is False and b.correct is True  # a long reference against "7" is decided by digits
    with MathGrader(workers=1, max_answer_chars=10) as g:
        outcome = ttscale.run(strategy, [Problem("c", "q", answer="\\frac{1}{2} + x^{2} + y")], backend, grader=g,
                              progress=False)
    (c,) = outcome.results
    assert c.correct is None and "max_answer_chars" in c.undecided
    assert outcome.summary["undecided"] == 1 and outcome.summary["graded"] == 0
    assert outcome.summary["accuracy_bounds"] == [0.0, 1.0]
    assert outcome.summary["grader"]["undecided_checks"] >= 1
