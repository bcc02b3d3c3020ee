"""Final answers in math completions.

`extract_answer` is Math-Verify's extraction (its regexes, priorities and LaTeX normalisation: boxed
answers first, several boxes forming one set; "final answer is", "answer:"; then inline or display math
and plain numbers or expressions with anchors, never a digit from inside a formula), with two rules it
lacks: GSM8K's `#### N` and multiple-choice letters (`choices`). It parses candidates with sympy, so
MathGrader runs it in worker processes with a hard timeout; `quick_extract` (math_text.py) is the
linear-time regex-only extraction used when that cannot run (and for the last-resort reading of a
reference). Both first normalise what is not mathematics (`clean_text`, math_text.py).
"""

from __future__ import annotations

import re

from ttscale.graders.math_text import (BOX, NUMBER, SENTENCE_END, THINKING_END, after_thinking, box_spans,
                                       clean_text, last_boxed, quick_extract, strip_thousands)

FALLBACKS = ("last_number", "none")  # last_number: answers without an anchor too (finished outputs only)
MAX_TAIL = 50_000  # characters from the end of an output that extraction reads (answers come last)
MAX_BOXES = 200  # more boxes than this: the regex-only extraction, linear time
MAX_BARE = 120  # characters: a longer output is not read whole as one bare answer
_NUM = r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?"
_GSM8K = re.compile(rf"####[ \t]*\\?\$?[ \t]*({_NUM})[ \t]*(?:[a-zA-Z%]+\.?[ \t]*)?[.!]?[ \t]*$", re.MULTILINE)
MAX_BOX_GAP = 300  # characters between two boxes of one answer (`\\boxed{2} and \\boxed{3}`)
_CORRECTION = re.compile(r"\b(?:wait|actually|correct(?:ion|ed|ing)|mistake|oops|hmm|sorry|wrong|error|instead|"
                         r"re-?check\w*|double-?check\w*|reconsider\w*|let me|hold on|redo|re-?calculat\w*|re-?comput\w*|"
                         r"on reflection|should be|over-?count\w*|under-?count\w*|check(?:ing)? again|scratch that|"
                         r"not quite|no[,:!]|that'?s not right)", re.IGNORECASE)
# a Minerva-style final answer after the last box (`Final Answer: The final answer is $10,455$`) competes with it
_MINERVA = re.compile(r"final answer(?:\s+is|\s*:)\s*(?:the final answer is\s*)?\$?\s*[-\d\\(\[{.]", re.IGNORECASE)
_CUE = re.compile(r"(?:final answer(?:\s+is)?|the answer is|^[ \t*#]*answer)\s*[:：]?", re.IGNORECASE | re.MULTILINE)
_FOREIGN_CUE = re.compile(r"(?:r[ée]ponse(?:\s+finale)?|endg[üu]ltige\s+antwort|antwort|respuesta(?:\s+final)?|risposta(?:\s+finale)?"
                          r"|resposta(?:\s+final)?|odpowied[źz]|jawaban|cevap|最终答案|最終答案|答案|回答|解答|答|正解|ответ|정답|답"
                          r"|उत्तर|الإجابة|الجواب)\s*(?:[:：]|\bis\b|est|ist|es|è|é|是|为|為)\s*", re.IGNORECASE)
_NEGATED_LETTER = re.compile(r"\b(?:not|rather than|instead of|isn't|is not)\s+\(?[A-Z]\)?(?![A-Za-z])"
                             r"|(?<![A-Za-z])\(?[A-Z]\)?(?:\s*(?:,|and|or)\s*\(?[A-Z]\)?)*\s+(?:is|are)\s+"
                             r"(?:wrong|incorrect|false|not correct|ruled out|eliminated|impossible)")
_APPROX = re.compile(r"\\approx|≈|\\simeq|\\sim(?![a-z])")
_SCALE = {"dozen": 12, "hundred": 100, "thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12}
_SCALED = re.compile(r"(-?\d[\d,]*(?:\.\d+)?)\s*(dozen|hundred|thousand|million|billion|trillion)", re.IGNORECASE)
_MIXED = re.compile(r"(-?)(\d+)\s+(\d+)\s*/\s*(\d+)")  # `2 1/2`: a mixed number
_COMMAND = re.compile(r"\\[a-zA-Z]+")
_PERCENT_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?\s*\\?%")
_LONE_SYMBOL = re.compile(r"\s*[A-Za-z](?:_\{?\w+\}?)?\s*=?\s*")
_TEXT_ARG = re.compile(r"\{[^{}]*\}")
_WORD = re.compile(r"[A-Za-z]{2,}")
_NOT_ASCII_MATH = re.compile(r"[^\x00-\x7f√π∞≤≥±°·×÷−]")
_WITH_UNITS = re.compile(r"(-?(?:\d[\d,]*(?:\.\d+)?|\.\d+))\s*((?:[a-zA-Z]{2,}\.?\s*)+)")
# words that are mathematics, not units or prose: `2 pi` is not 2
MATH_WORDS = frozenset({"pi", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod",
                        "and", "or", "to", "times", "cdot", "over", "infty", "inf", "sinh", "cosh", "tanh",
                        "max", "min", "gcd", "lcm", "deg", "arcsin", "arccos", "arctan", "det"})

_TIME = re.compile(r"(?<![\d:])(\d{1,2}:\d{2}(?::\d{2})?(?:\s*(?:am|pm|a\.m\.|p\.m\.))?)(?![\d:])", re.IGNORECASE)
_IN_LIST_BEFORE = re.compile(r"(?:[\d)\]]\s*,|\(|\[|\d\s*:)\s*$")  # `(7, 6`, `2, 3`, `12:30`
_IN_LIST_AFTER = re.compile(r"^\s*(?:,\s*-?\(?\d|:\s*\d)")
# a number that is one part of a larger expression (`10\sqrt3 + 5`, `x^2+3x+2`, a matrix entry, the
# value after `\approx`): the anchorless fallback takes a whole expression or nothing
_IN_EXPRESSION_BEFORE = re.compile(r"(?:[+/^&_]|(?<!\*)\*|\\(?:approx|sim|simeq|pm|mp)|[\w)}]\s*-|\\[a-zA-Z]+\{?|≈)\s*$")
_IN_EXPRESSION_AFTER = re.compile(r"^(?:[ \t]+\d+\s*/\s*\d|\s*(?:[+/^&_]|\*(?!\*)|\\\\|\\(?!text|quad|qquad|mathrm|mbox|[,;!:\s])[a-zA-Z])|[(\\{])")


def _is_prose(s: str) -> bool:
    return bool(_NOT_ASCII_MATH.search(s)) or any(w.lower() not in MATH_WORDS for w in _WORD.findall(s))


def extract_answer(text: str | None, fallback: str = "last_number", finished: bool = True,
                   choices: str | None = None, timeout: int | None = None,
                   thinking_end: tuple[str, ...] = THINKING_END, all_boxes: bool = False) -> str | None:
    """The final answer in a completion, or None (see the module doc).

    A reasoning model's answer comes after its thinking (the last of `thinking_end`, `</think>` by
    default): the thinking is read only when nothing follows it. Then GSM8K's `#### N`; then the boxes,
    searched over the whole output in linear time: the last group of boxes (`\\boxed{2} and \\boxed{3}`
    is one answer, {2, 3}; `\\boxed{4}. Wait, no: \\boxed{5}` is 5), and a box that cannot be read is
    returned as written (the check is then undecided), never replaced by a number from the prose. Then
    the text after an answer cue (`Answer:`, `The final answer is`, or `Réponse`, `Antwort`, `答案`,
    `Ответ`, ...) read whole when it is a short expression; then a short output that is all
    mathematics (a bare answer, `2√2`, `\\dfrac{3}{4}`, `(x+1)(x-2)`) read whole; then Math-Verify's
    extraction over the last MAX_TAIL characters: the first candidate by its priority, the rightmost
    within a priority, that sympy can read, else the first candidate's text. Answers without an
    anchor (plain math, a bare number) count only for a finished output and with fallback="last_number",
    and only a whole expression: never a coefficient, a term or an entry of a larger one.
    choices: a multiple-choice problem's letters ("ABCD"): the chosen letter, Math-Verify's string mode.
    timeout: seconds for the whole extraction via SIGALRM (main thread only; the grader's workers).
    all_boxes: every box is one answer (Math-Verify's rule; a dataset's reference `\\boxed{1} and \\boxed{2}`).
    """
    if not text:
        return None
    text = after_thinking(clean_text(text), thinking_end)
    return _extract_final(text, fallback, finished, choices, timeout, all_boxes)


def _extract_final(text: str, fallback: str, finished: bool, choices: str | None, timeout: int | None,
                   all_boxes: bool = False) -> str | None:
    anchorless = finished and fallback == "last_number"
    text = _FOREIGN_CUE.sub("Answer: ", text)
    if choices:
        text = _NEGATED_LETTER.sub(" ", text)  # "C, not A": A is not chosen
        return (_extract(text[-MAX_TAIL:], _letter_configs(choices, anchorless), timeout, letters=True)
                or _chosen_letter(text[-MAX_TAIL:], choices, anchorless))
    marked = _gsm8k_last(text)
    if marked is not None and not (BOX.search(text, marked[1]) or _CUE.search(text, marked[1])):
        return marked[0]  # (a later box or answer cue is the answer: the marker was a numbered heading)
    spans = box_spans(text)
    if len(spans) > MAX_BOXES:  # pathological (Math-Verify's box pattern is quadratic there)
        return quick_extract(text, fallback, finished)
    last_box = _last_box_start(text)
    if last_box >= 0 and (not spans or spans[-1][0] < last_box) and not all_boxes:
        # the last box is unclosed (a cut-off output): kept as written, its check undecided, never a prose number
        return _unread_box(text[last_box:])
    if spans and (all_boxes or not _MINERVA.search(text, _box_end(text, spans[-1][2]))):
        start, stop = (spans[0][0], _box_end(text, spans[-1][2])) if all_boxes else _last_box_group(text, spans)
        answer = _extract(text[start:stop], _math_configs(False), timeout, unread_box=True)
        if answer is None or answer.startswith("\\boxed{"):  # Math-Verify missed or could not read it
            content = text[spans[-1][1]: spans[-1][2]].strip().rstrip("\\").strip()  # (`\\boxed 7`, `\\boxed{5\\}`)
            if NUMBER.fullmatch(content):
                return content
            if answer is None:  # (an empty box too: undecided, never a silent "no answer")
                answer = f"\\boxed{{{content}}}"
        return answer
    cued = _after_cue(text)
    if cued is not None:
        return cued
    if anchorless:
        bare = bare_answer(text)
        if bare is not None:
            return bare
    tail = text[-MAX_TAIL:]
    answer = _extract(tail, _math_configs(anchorless), timeout)
    if answer is None and anchorless:  # a time of day, which a plain number must not stand for
        times = _TIME.findall(tail)
        if times:
            return times[-1].strip()
    return answer


def _gsm8k_last(text: str) -> tuple[str, int] | None:
    """(number, end) of the last GSM8K marker (`#### N`: a number only, so `#### Step 2` is a heading), or None."""
    last = None
    for last in _GSM8K.finditer(text):
        pass
    return (strip_thousands(last.group(1)), last.end()) if last is not None and last.group(1) else None


def _last_box_start(text: str) -> int:
    last = -1
    for m in BOX.finditer(text):
        last = m.start()
    return last


def _unread_box(tail: str) -> str:
    """An unclosed box, as written (up to 200 characters, still unclosed): its check is undecided."""
    return tail[:200].rstrip()


def _last_box_group(text: str, spans: list[tuple[int, int, int]]) -> tuple[int, int]:
    """(start, end) of the last run of boxes that form one answer: Math-Verify joins every box into a
    set (`\\boxed{2} and \\boxed{3}`, `y_1 = \\boxed{..}` and `y_2 = \\boxed{..}`); a run is cut where
    the text between two boxes corrects the first (`wait`, `no`, `actually`, a question) or is over
    MAX_BOX_GAP characters of further reasoning, so a self-correction's last box is the answer."""
    start, _, content_end = spans[-1]
    stop = _box_end(text, content_end)
    for prev in reversed(spans[:-1]):
        between = text[_box_end(text, prev[2]): start]
        if len(between) > MAX_BOX_GAP or _CORRECTION.search(_TEXT_ARG.sub(_text_words, between)):
            break
        start = prev[0]
    return start, stop


def _text_words(m: re.Match) -> str:  # `\\text{ for part (a) and }`: its words are text, not a question
    return " " + m.group(0)[1:-1].replace("?", " ") + " "


def _box_end(text: str, content_end: int) -> int:
    return content_end + 1 if content_end < len(text) and text[content_end] == "}" else content_end


def _after_cue(text: str) -> str | None:
    """The text after the last answer cue, read whole when it is a short expression (else None)."""
    last = None
    for last in _CUE.finditer(text):
        pass
    if last is None:
        return None
    return bare_answer(_cue_phrase(text[last.end(): last.end() + 400]))


def _cue_phrase(tail: str) -> str:
    tail = tail.split("\n", 1)[0].strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if tail.startswith(left):
            end = re.compile(r"(?<!\\)" + re.escape(right)).search(tail, len(left))
            return tail[len(left): end.start()].strip() if end and end.start() > len(left) else ""
    end = SENTENCE_END.search(tail)
    return tail[: end.start()] if end else tail


def bare_answer(text: str) -> str | None:
    """A short output that is all mathematics, read whole (a model told to answer only): `2√2`,
    `10\\sqrt3 + 5`, `3\\frac{1}{2}`, `\\$25`, `(x+1)(x-2)`, `10 million`; the exact side of `\\approx`.
    None when it is prose, long, several lines, or Math-Verify cannot read it whole."""
    s = text.strip()
    if not s or len(s) > MAX_BARE or "\n" in s:
        return None
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) > len(left) + len(right):
            s = s[len(left): len(s) - len(right)].strip()
    sides = _APPROX.split(s, 1)  # `\\frac{\\pi}{4} \\approx 0.785`: the exact side; `x \\approx 11`: 11
    s = (sides[1] if len(sides) == 2 and _LONE_SYMBOL.fullmatch(sides[0]) else sides[0]).strip().rstrip(".。").strip()
    s = re.sub(r"^\\?\$\s*", "", s)  # a currency sign
    scaled = _SCALED.fullmatch(s)
    if scaled:
        return scaled_number(scaled)
    mixed = _MIXED.match(s)  # `2 1/2`, `1 3/4 cups`: one number, never its whole part
    if mixed and (mixed.end() == len(s) or _WITH_UNITS.fullmatch("1 " + s[mixed.end():].strip())):
        return mixed_number(mixed)
    if _PERCENT_NUMBER.fullmatch(s):  # (the LaTeX parser under hydra's ANTLR runtime cannot read `20\\%`)
        return s
    units = _WITH_UNITS.fullmatch(s)  # `3.5 cm`, `12 apples`: the number
    if units and not any(w.strip(".").lower() in MATH_WORDS for w in units.group(2).split()):
        return units.group(1)
    if not s or "$" in s or _is_prose(_TEXT_ARG.sub(" ", _COMMAND.sub(" ", s))):
        return None
    from math_verify import LatexExtractionConfig
    from math_verify.parser import extract_target_from_pred, get_extraction_regexes

    try:  # (bounded by the caller's timeout: extraction runs under one alarm in the grader's workers)
        parsed = extract_target_from_pred(f"${s}$", get_extraction_regexes((LatexExtractionConfig(),)))
    except Exception:  # noqa: BLE001  (not a whole expression)
        return None
    return s if parsed and parsed[0] is not None else None


def mixed_number(match: re.Match) -> str:
    """`2 1/2` as 5/2 (exact)."""
    whole, numerator, denominator = int(match.group(2)), int(match.group(3)), int(match.group(4))
    return f"{match.group(1)}{whole * denominator + numerator}/{denominator}" if denominator else match.group(0)


def scaled_number(match: re.Match) -> str:
    """`10 million` as 10000000: a number times a scale word (thousand .. trillion)."""
    from decimal import Decimal

    value = Decimal(match.group(1).replace(",", "")) * _SCALE[match.group(2).lower()]
    return format(value.normalize(), "f")


def _chosen_letter(text: str, choices: str, anchorless: bool) -> str | None:
    """A letter Math-Verify's patterns miss: `the answer is (C)`, `Answer: (B)`, or (anchorless) the
    last `(D)` standing alone."""
    letters = "".join(re.escape(c) for c in choices)
    boxed = last_boxed(text)
    if boxed is not None:
        inner = re.fullmatch(rf"\s*(?:\\text\{{)?\(?([{letters}])\)?\}}?\s*", boxed)
        if inner:
            return inner.group(1)
    anchored = list(re.finditer(rf"(?i:answer)\W{{0,20}}?(?:is\W{{0,5}})?\(?([{letters}])\)?(?![A-Za-z])", text))
    if anchored:
        return anchored[-1].group(1)
    if anchorless:
        alone = list(re.finditer(rf"\(([{letters}])\)", text))
        if alone:
            return alone[-1].group(1)
    return None


def _math_configs(anchorless: bool):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return (LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=anchorless),
            ExprExtractionConfig(try_extract_without_anchor=anchorless))


def _letter_configs(choices: str, anchorless: bool):
    from math_verify import StringExtractionConfig

    return (StringExtractionConfig(strings=tuple(choices), try_extract_without_anchor=anchorless, lowercase=False),)


def _part_of_a_list(text: str, match) -> bool:
    """Whether a plain number Math-Verify matched is one element of a list, tuple or time, or one part of
    a larger expression (a coefficient, a term, a matrix entry, the value after `\\approx`)."""
    spans = [match.span(name) for name, value in match.groupdict().items()
             if value and (name.startswith(("integer", "decimal")) or name == "expr")]
    if not spans:
        return False
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    before, after = text[max(0, start - 40): start], text[end: end + 40]
    return bool(_IN_LIST_BEFORE.search(before) or _IN_LIST_AFTER.search(after)
                or _IN_EXPRESSION_BEFORE.search(before) or _IN_EXPRESSION_AFTER.search(after))


def _extract(text: str, configs, timeout: int | None, letters: bool = False, unread_box: bool = False) -> str | None:
    """The first candidate sympy can read; else the first candidate's text (`unread_box`: kept in its
    box, `\\boxed{\\frac{1}{}}`, so that the check says it could not be read: undecided)."""
    from math_verify import ExprExtractionConfig
    from math_verify.parser import extract_match, get_extraction_regexes

    def candidates():
        patterns = sorted(((pattern, target, priority) for regexes, target in get_extraction_regexes(configs)
                           for pattern, priority in regexes), key=lambda item: item[2])
        for priority in sorted({p for _, _, p in patterns}):
            matches = [(m, target) for pattern, target, p in patterns if p == priority for m in pattern.finditer(text)]
            matches.sort(key=lambda item: (item[0].end(), -item[0].start()), reverse=True)
            yield from matches

    def run():
        first = None
        for match, target in candidates():
            if isinstance(target, ExprExtractionConfig) and _part_of_a_list(text, match):
                continue  # a number from a list, a tuple or a time: the whole of it or nothing
            parsed, string = extract_match(match, target)
            string = (string or "").strip()
            if first is None and string:
                first = string
            if parsed is not None and string:
                return string.upper() if letters else string
        if first and unread_box and not _PERCENT_NUMBER.fullmatch(first):  # (`28\\%`: the quick rules read it)
            return f"\\boxed{{{first}}}"
        return (first.upper() if letters else first) if first else None

    if not timeout:
        return run()
    from math_verify.utils import timeout as bounded

    return bounded(timeout_seconds=int(timeout))(run)()


