import time

import pytest

from ttscale.graders.math import MathGrader, extract_answer, grade_batch, is_equivalent, normalize_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),  # nested braces
        ("first \\boxed{3}, then corrected: \\boxed{4}", "4"),  # several boxes: the last
        ("\\boxed{a \\boxed{3}} and \\fbox{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\framebox{204}", "204"),
        ("\\boxed 7 done", "7"),
        ("Natalia sold 48/2 = 24 clips.\n#### 2,125", "2125"),
        ("Final Answer: $x = 3$", "x = 3"),
        ("So the answer is 18 dollars.", "18 dollars"),
        ("The answer is: 42.", "42"),
        ("I count 3 apples and then 4,000 pears", "4000"),
        ("no digits here", None),
        ("", None),
        (None, None),
        ("unbalanced \\boxed{3 and more", "3"),  # falls back to the last number
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


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


def test_grouping_by_equivalence(grader):
    labels = grader.group(["1/2", "0.5", "\\frac{1}{2}", "3", "x+1", "1+x", None])
    assert labels == [0, 0, 0, 1, 2, 2, None]


def test_timeout_on_pathological_input_kills_worker_and_recovers():
    with MathGrader(workers=1, timeout=2.0) as g:
        g.equivalent("\\sqrt{4}", "2")  # start the worker first
        t0 = time.perf_counter()
        assert g.equivalent("2", "9^{9^{9^{9^{9}}}}") is False
        assert time.perf_counter() - t0 < 8
        assert g.pool.timeouts == 1
        # the pool replaced the killed worker and keeps working
        assert g.equivalent("\\sqrt{16}", "4") is True


def test_grading_from_threads(grader):
    from concurrent.futures import ThreadPoolExecutor

    pairs = [("\\sqrt{4}", "2"), ("x", "y")] * 4
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: grader.equivalent(*p), pairs))
    assert results == [True, False] * 4


def test_batch_grading_many(grader):
    pairs = [(str(i), f"{i}.0") for i in range(2000)] + [("\\sqrt{2}", "\\sqrt{2}")]
    assert all(grader.grade_batch(pairs))
