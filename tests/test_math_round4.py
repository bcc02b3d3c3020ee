"""Math grading, round 4 (#35): reasoning-model outputs, bare answers, other languages, multiple
choice, and a vote that never waits. Every case is hand-made; each kind has one that used to fail."""

from __future__ import annotations

import random

import pytest

from ttscale.graders.math import MathGrader, MathSettings, reference_answer, too_costly
from ttscale.graders.math_answers import extract_answer


@pytest.fixture(scope="module")
def grader():
    with MathGrader(workers=2) as g:
        yield g


def verdict(grader, output, gold, **settings):
    if settings:
        with MathGrader(workers=1, settings=MathSettings(**settings)) as own:
            return verdict(own, output, gold)
    answer = grader.extract(output)
    return grader.equivalent(reference_answer(gold, grader.settings.choices), answer)


# ---- reasoning-model outputs ------------------------------------------------------------------

@pytest.mark.parametrize("output, gold, expected", [
    # the answer after the thinking beats a box inside it
    ("<think>first try: \\boxed{12}; no, I slipped</think>\n\nHence the total is $\\boxed{14}$.", "14", True),
    ("<think>first try: \\boxed{12}</think>\n\nThe final answer is 14.", "14", True),
    ("<think>first try: \\boxed{12}</think>\n\nThe final answer is 14.", "12", False),
    # the thinking is read only when nothing follows it
    ("<think>so x = \\boxed{3/4}</think>", "\\frac34", True),
    ("<think>so x = \\boxed{3/4}</think>\n\n", "\\frac34", True),
])
def test_the_answer_after_the_thinking_comes_first(grader, output, gold, expected):
    assert verdict(grader, output, gold) is expected


def test_a_models_own_thinking_marker_from_its_config():
    from ttscale.build import build_grader

    s1 = {"thinking": {"start": "<|im_start|>think", "end": "<|im_start|>answer"}}
    output = "<|im_start|>think\nmaybe \\boxed{6}\n<|im_start|>answer\nAnswer: 9"
    with build_grader({"format": "qa"}, {"workers": 1}, s1) as g:
        assert g.settings.thinking_end == ("</think>", "<|im_start|>answer")
        assert g.extract(output) == "9"
    with build_grader({"format": "qa"}, {"workers": 1}, {"thinking": {"start": "", "end": "The answer is"}}) as g:
        assert g.settings.thinking_end == ("</think>",)  # a chat model's answer cue is not an end of thinking


@pytest.mark.parametrize("output, expected", [
    ("So $x = \\boxed{6}$. Hmm, wait, that's wrong, it is $\\boxed{8}$.", "8"),
    ("\\boxed{6}\n\nActually no: \\boxed{8}", "8"),
    ("Is it \\boxed{6}? Checking again gives \\boxed{8}", "8"),
])
def test_a_self_correction_takes_its_last_box(output, expected):
    assert extract_answer(output) == expected


@pytest.mark.parametrize("output, gold", [
    ("The roots are $\\boxed{-1}$ and $\\boxed{4}$.", "-1, 4"),  # Math-Verify's rule: boxed one by one, a set
    ("$a = \\boxed{2}$, $b = \\boxed{5}$", "2, 5"),
    ("\\boxed{(0, 1)} \\text{ for the first part and } \\boxed{(2, 3)}", "(0, 1), (2, 3)"),
])
def test_a_list_boxed_one_by_one_is_one_answer(grader, output, gold):
    assert verdict(grader, output, gold) is True


def test_a_box_before_a_long_loop_is_found():
    output = "Adding up, the sum is $\\boxed{91}$.\n" + "Let me verify once more. " * 4000  # ~100k characters
    assert len(output) > 90_000
    assert extract_answer(output) == "91"


@pytest.mark.parametrize("output, expected", [
    ("#### Step 1\nWe have 5 boxes.\n#### Step 2\nEach holds 6, so 30 in all.\nThe answer is 30", "30"),
    ("#### Part 3: totals\nSo it is 12.", "12"),
    ("She pays 3 * 4 = 12 dollars.\n#### 12", "12"),
    ("...\n#### $1,250", "1250"),
    ("...\n#### 7 apples.", "7"),
])
def test_gsm8k_marker_takes_a_number_only(output, expected):
    assert extract_answer(output) == expected


def test_an_unreadable_box_is_undecided_never_a_number_from_the_prose(grader):
    output = "Counting 7 cases we get \\boxed{\\frac{3}{}}"
    answer = grader.extract(output)
    assert answer != "7"
    assert grader.equivalent("7", answer) is None
    assert grader.equivalent("\\frac{3}{4}", answer) is None


# ---- bare answers -----------------------------------------------------------------------------

@pytest.mark.parametrize("output, gold, expected", [
    ("3√5", "3", False), ("3√5", "3\\sqrt{5}", True), ("√(x+2)", "\\sqrt{x+2}", True),
    ("4\\sqrt{2} - 1", "4", False), ("4\\sqrt{2} - 1", "-1+4\\sqrt2", True),
    ("5\\frac{1}{4}", "\\frac{1}{4}", False), ("5\\frac{1}{4}", "\\frac{21}{4}", True),
    ("2x^2 - 5x + 7", "7", False), ("2x^2 - 5x + 7", "7-5x+2x^2", True),
    ("\\begin{pmatrix} 5 & 0 \\\\ 1 & 9 \\end{pmatrix}", "9", False),
    ("\\frac{\\sqrt{3}}{2} \\approx 0.866", "\\frac{\\sqrt3}{2}", True),
    ("y \\approx 2.5", "2.5", True),
    ("The answer is 4\\sqrt{3}.", "4", False), ("Answer: 4√3", "4\\sqrt{3}", True),
])
def test_a_short_answer_is_read_whole_never_as_a_fragment(grader, output, gold, expected):
    assert verdict(grader, output, gold) is expected


@pytest.mark.parametrize("output, gold", [
    ("\\dfrac{5}{6}", "\\frac56"), ("\\tfrac{5}{6}", "5/6"), ("\\frac {2}{9}", "\\frac{2}{9}"),
    ("\\$40", "40"), ("\\$1,200.50", "1200.5"), ("\\mathrm{C}", "C"), ("\\textbf{E}", "E"),
    ("g'(t)", "g'(t)"), ("\\begin{bmatrix} 2 & 1 \\\\ 0 & 3 \\end{bmatrix}", "\\begin{pmatrix} 2 & 1 \\\\ 0 & 3 \\end{pmatrix}"),
    ("(x-3)(x+4)", "x^2+x-12"), ("2 billion", "2000000000"), ("4, 7", "4,7"),
])
def test_bare_answers_that_were_not_read(grader, output, gold):
    assert verdict(grader, output, gold) is True


@pytest.mark.parametrize("output, gold", [
    ("2 billion", "2"), ("1.5 thousand", "1.5"), ("4, 7", "4.7"), ("g'(t)", "g(t)"),
])
def test_quick_rules_that_merged_different_answers(grader, output, gold):
    assert verdict(grader, output, gold) is False


def test_percent_inside_a_box_under_the_projects_antlr(grader):
    assert verdict(grader, "So $\\boxed{40\\%}$", "40") is True
    assert verdict(grader, "So $\\boxed{40\\%}$", "40\\%") is True
    assert verdict(grader, "So $\\boxed{40\\%}$", "0.4", percent="ratio") is True
    assert verdict(grader, "So $\\boxed{40\\%}$", "\\frac{2}{5}", percent="ratio") is True


def test_expensive_answers_are_refused_by_measured_cost_not_shape(grader):
    for ordinary in ("e^{-t^2}", "2^{3^2}", "x^{y^{z}}", "2^{2^{2^{2}}}"):
        assert too_costly(ordinary) is None, ordinary
    assert verdict(grader, "\\boxed{e^{-t^2}}", "e^{-t^{2}}") is True
    assert verdict(grader, "\\boxed{2^{3^2}}", "512") is True
    assert too_costly("7^{7^{7}}") and too_costly("3**3**3**3")
    assert verdict(grader, "\\boxed{7^{7^{7}}}", "7^{7^{7}}") is True  # the same string: still equal


# ---- other languages and multiple choice ------------------------------------------------------

@pytest.mark.parametrize("output", [
    "Donc, 3 + 5 = 8. Réponse finale : 15", "Also ist es 8.\nAntwort: 15", "Entonces 8.\nRespuesta: 15",
    "所以 8 不对。答案：15", "因此答案是15。", "Итак, 8 неверно. Ответ: 15.", "정답: 15", "共有15个苹果",
])
def test_answers_in_other_languages(output):
    assert extract_answer(output) == "15"


@pytest.mark.parametrize("output, gold, expected", [
    ("The answer is (B).", "(B) Paris", True),
    ("I choose D", "D. 12 meters", True),
    ("B, not D", "B", True),
    ("It must be C rather than A.", "The correct option is C", True),
    ("It must be C rather than A.", "(A) 4", False),
])
def test_multiple_choice_letters(output, gold, expected):
    with MathGrader(workers=1, choices="ABCD") as g:
        assert verdict(g, output, gold) is expected


# ---- never silent, never slow -----------------------------------------------------------------

def test_an_extraction_that_runs_out_is_caught_in_its_worker():
    nested = "\\frac{1}{" * 140 + "2" + "}" * 140  # math-verify takes seconds to read it
    with MathGrader(workers=1, extract_timeout=1) as g:
        answers = g.extract_many(["\\boxed{" + nested + "}", "So \\boxed{5}"], [True, True])
        assert answers[1] == "5"  # the same worker went on
        assert g.stats()["extraction_fallbacks"] == 1
        assert g.stats()["worker_timeouts"] == 0 and g.stats()["worker_failures"] == 0  # never killed


def test_grouping_many_answers_and_a_hostile_one_is_bounded_and_order_free():
    answers = [f"\\frac{{{k}}}{{9}}+\\sqrt{{{k + 2}}}" for k in range(64)]
    answers += ["\\frac{3}{9}+\\sqrt{5}" .replace("3}{9", "1}{3"), "\\frac{1}{" * 95 + "3" + "}" * 95]
    with MathGrader(workers=2) as g:
        labels = g.group(answers)
        assert len(set(labels)) == 65  # 1/3 + sqrt5 joins 3/9 + sqrt5; the hostile answer stays alone
        assert labels[64] == labels[3] and labels.count(labels[65]) == 1
        assert g.stats()["worker_timeouts"] == 0 and g.stats()["worker_failures"] == 0
        shuffled = list(range(len(answers)))
        random.Random(7).shuffle(shuffled)
        again = g.group([answers[i] for i in shuffled])
        for x in range(len(answers)):
            for y in (3, 64, 65):
                assert (labels[x] == labels[y]) == (again[shuffled.index(x)] == again[shuffled.index(y)])


def test_grouping_joins_symbolic_equals_and_keeps_apart_what_differs():
    with MathGrader(workers=2) as g:
        labels = g.group(["x^2+3x", "x(x+3)", "(x+3)x", "x^2+3", "\\frac{1}{2}", "0.5", "\\{1, 2\\}", "\\{2, 1\\}", "3"])
    assert labels[0] == labels[1] == labels[2] and labels[3] != labels[0]
    assert labels[4] == labels[5] and labels[6] == labels[7] and len(set(labels)) == 5


def test_the_regex_only_extraction_follows_the_same_rules():
    from ttscale.graders.math_text import quick_extract

    assert quick_extract("#### Step 1\nWe add 3 and 4.\nThe answer is 7") == "7"
    assert quick_extract("Total:\n#### 1,250") == "1250"
    assert quick_extract("<think>so \\boxed{3}</think>\nThe answer is 5.") == "5"
    assert quick_extract("<think>so \\boxed{3}</think>") == "3"


# ---- after review: more of the same kinds -----------------------------------------------------

@pytest.mark.parametrize("output, expected", [
    ("<think>so \\boxed{15}</think><|im_end|>", "15"),  # an end-of-turn token is not an answer after the thinking
    ("<think>so \\boxed{15}</think>\n</s>", "15"),
    ("\\boxed{10}.\n\nRechecking the second case, the total is \\boxed{11}.", "11"),
    ("I wrote \\boxed{30}, which double counts; it should be \\boxed{24}.", "24"),
    ("#### 1\nFirst 3*4 = 12.\n#### 2\nThen 12 + 1 = 13.\n\n$\\boxed{13}$", "13"),  # numbered headings, then the box
    ("#### 3 Cases\nSo the answer is 9.", "9"),
    ("\\boxed{8}." + "\nNow I will restate the final answer clearly." * 3000, "8"),  # a mention, not a final answer
    ("The ticket costs \\$14.", "14"),
    ("So it takes 3 1/4 hours.", "3 1/4"),  # a mixed number in prose: the whole of it (13/4), never 3
    ("Final answer: 3 1/4 hours", "13/4"),
    ("4 hundred", "400"), ("3 dozen", "36"),
])
def test_more_outputs_of_the_reviewed_kinds(output, expected):
    assert extract_answer(output) == expected


def test_a_cut_off_or_empty_box_is_undecided(grader):
    assert grader.equivalent("3 1/4", "13/4") is True
    for output in ("We used 6 colours, so the count is \\boxed{\\frac{6}{", "With 6 colours: \\boxed{}"):
        answer = grader.extract(output)
        assert answer != "6" and grader.equivalent("6", answer) is None, (output, answer)


def test_the_regex_only_extraction_keeps_every_marker():
    from ttscale.graders.math_text import quick_extract

    assert quick_extract("We need 2 and 3.\nFinal answer: \\frac{1}{4}") == "\\frac{1}{4}"
    assert quick_extract("<think>\\boxed{6}</think><|im_end|>") == "6"


def test_mixed_numbers_scale_words_and_percent_fractions(grader):
    assert verdict(grader, "2 1/2", "\\frac{5}{2}") is True and verdict(grader, "2 1/2", "21/2") is False
    assert verdict(grader, "Answer: 1 3/4", "7/4") is True
    assert verdict(grader, "5 hundred", "5") is False and verdict(grader, "5 hundred", "500") is True
    assert verdict(grader, "$\\boxed{16\\frac{2}{3}\\%}$", "16\\frac{2}{3}") is True


def test_ordinary_factorials_are_compared_and_huge_powers_refused(grader):
    for ordinary in ("(n+1)!", "\\frac{(2n)!}{n!(n+1)!}", "\\binom{n^2}{2}"):
        assert too_costly(ordinary) is None, ordinary
    assert verdict(grader, "\\boxed{(n+1)!}", "(n+1)\\cdot n!") is True
    for costly in ("99999^{999999}", "(10^{6})!", "100000!"):
        assert too_costly(costly), costly


def test_multiple_choice_eliminations():
    assert extract_answer("A and B are wrong, so it must be C.", choices="ABCD") == "C"
    assert extract_answer("The answer is D; (A) is incorrect.", choices="ABCD") == "D"


def test_a_huge_power_never_holds_up_the_vote():
    pairs = [(f"(x+{k})^{{2}}", f"x^2+{2 * k}x+{k * k}") for k in range(8)]
    answers = [a for pair in pairs for a in pair] + [f"{k}\\sqrt{{3}}" for k in range(48)] + ["999999^{999999}"]
    with MathGrader(workers=2) as g:
        labels = g.group(answers)
        assert all(labels[2 * k] == labels[2 * k + 1] for k in range(8))  # every symbolic pair still joined
        assert len(set(labels)) == 57
        assert g.stats()["worker_timeouts"] == 0


def test_tuples_and_sets_are_fingerprinted_and_grouped():
    answers = [f"({k}, {k + 1})" for k in range(40)] + ["(0.5, 1.5)", "(\\frac{1}{2}, \\frac{3}{2})", "\\{300, 7\\}", "\\{7, 300\\}"]
    with MathGrader(workers=2) as g:
        labels = g.group(answers)
    assert labels[40] == labels[41] and labels[42] == labels[43] and len(set(labels)) == 42
