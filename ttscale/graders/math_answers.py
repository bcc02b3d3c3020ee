"""Final answers in math completions.

`extract_answer` is Math-Verify's extraction (its regexes, priorities and LaTeX normalisation: boxed
answers first, several boxes forming one set; "final answer is", "answer:"; then inline or display math
and plain numbers or expressions with anchors, never a digit from inside a formula), with two rules it
lacks: GSM8K's `#### N` and multiple-choice letters (`choices`). It parses candidates with sympy, so
MathGrader runs it in worker processes with a hard timeout; `quick_extract` is the linear-time
regex-only extraction used when that cannot run (and for the last-resort reading of a reference).

`clean_text` first normalises what models and datasets write that is not mathematics: zero-width and
no-break spaces, NUL bytes, Unicode minus signs and vulgar fractions (½), a trailing backslash.
"""

from __future__ import annotations

import re
import unicodedata

FALLBACKS = ("last_number", "none")  # last_number: answers without an anchor too (finished outputs only)
_INVISIBLE = {ord(c): None for c in "\u200b\u200c\u200d\u2060\ufeff\u00ad\x00"}
_SPACES = {ord(c): " " for c in "\u00a0\u2007\u202f\u2009\u2002\u2003\u2004\u2005\u2006\u2008\u200a\u3000"}
_SIGNS = {ord("\u2212"): "-", ord("\u2013"): "-", ord("\u2044"): "/", ord("\uff0c"): ","}
MAX_TAIL = 50_000  # characters from the end of an output that extraction reads (answers come last)
MAX_BOXES = 200  # more boxes than this: the regex-only extraction, linear time
_GSM8K = re.compile(r"####\s*([^\n]*)")
_TIME = re.compile(r"(?<![\d:])(\d{1,2}:\d{2}(?::\d{2})?(?:\s*(?:am|pm|a\.m\.|p\.m\.))?)(?![\d:])", re.IGNORECASE)
_FRAMED = re.compile(r"\\(?:fbox|framebox)(?![a-zA-Z])")
_IN_LIST_BEFORE = re.compile(r"(?:[\d)\]]\s*,|\(|\[|\d\s*:)\s*$")  # `(7, 6`, `2, 3`, `12:30`
_IN_LIST_AFTER = re.compile(r"^\s*(?:,\s*-?\(?\d|:\s*\d)")


def clean_text(text: str) -> str:
    """What is not mathematics, normalised (see the module doc); linear time."""
    text = text.translate(_INVISIBLE).translate(_SPACES).translate(_SIGNS)
    if any(0x00BC <= ord(c) <= 0x00BE or 0x2150 <= ord(c) <= 0x215E for c in text):
        out = []
        for c in text:
            parts = unicodedata.decomposition(c).split()
            if parts[:1] == ["<fraction>"]:
                digits = [chr(int(x, 16)) for x in parts[1:]]
                out.append("".join("/" if d == "\u2044" else d for d in digits))
            else:
                out.append(c)
        text = "".join(out)
    return _FRAMED.sub(r"\\boxed", text).rstrip().rstrip("\\").rstrip()


def gsm8k_answer(text: str) -> str | None:
    """The answer after the last `#### ` (GSM8K's reference format), or None."""
    last = None
    for last in _GSM8K.finditer(text):
        pass
    if last is None:
        return None
    answer = strip_thousands(last.group(1).strip().rstrip(".").strip())
    return answer or None


def extract_answer(text: str | None, fallback: str = "last_number", finished: bool = True,
                   choices: str | None = None, timeout: int | None = None) -> str | None:
    """The final answer in a completion, or None (see the module doc).

    GSM8K's `#### N` wins when present. Otherwise Math-Verify's extraction over the last MAX_TAIL
    characters (an output with over MAX_BOXES boxes: `quick_extract`, linear): the first candidate by its
    priority (a box, then "final answer is", then "answer:", then plain math), the rightmost within a
    priority, that sympy can read, else the first candidate's text. Answers without an anchor (plain
    math, a bare number) count only for a finished output and with fallback="last_number".
    choices: a multiple-choice problem's letters ("ABCD"): the chosen letter, Math-Verify's string mode.
    timeout: seconds for the whole extraction via SIGALRM (main thread only; the grader's workers).
    """
    if not text:
        return None
    text = clean_text(text)
    anchorless = finished and fallback == "last_number"
    if choices:
        return (_extract(text[-MAX_TAIL:], _letter_configs(choices, anchorless), timeout, letters=True)
                or _chosen_letter(text[-MAX_TAIL:], choices, anchorless))
    marked = gsm8k_answer(text)
    if marked is not None:
        return marked
    if text.count("\\boxed") > MAX_BOXES:  # pathological (Math-Verify's box pattern is quadratic there)
        return quick_extract(text, fallback, finished)
    tail = text[-MAX_TAIL:]
    answer = _extract(tail, _math_configs(anchorless), timeout)
    if answer is None and anchorless:  # a time of day, which a plain number must not stand for
        times = _TIME.findall(tail)
        if times:
            return times[-1].strip()
    return answer


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
    """Whether a plain number Math-Verify matched is one element of a list, tuple or time."""
    spans = [match.span(name) for name, value in match.groupdict().items()
             if value and (name.startswith(("integer", "decimal")) or name == "expr")]
    if not spans:
        return False
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    return bool(_IN_LIST_BEFORE.search(text[max(0, start - 40): start]) or _IN_LIST_AFTER.search(text[end: end + 40]))


def _extract(text: str, configs, timeout: int | None, letters: bool = False) -> str | None:
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
        return (first.upper() if letters else first) if first else None

    if not timeout:
        return run()
    from math_verify.utils import timeout as bounded

    return bounded(timeout_seconds=int(timeout))(run)()

_BOX = re.compile(r"\\(?:boxed|fbox|framebox)(?![a-zA-Z])")
_BRACE = re.compile(r"[{}]")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_MARKERS = (re.compile(r"####\s*"), re.compile(r"final answer\s*(?:is\b)?\s*[:：]?\s*", re.IGNORECASE),
            re.compile(r"the answer is\s*[:：]?\s*", re.IGNORECASE),
            re.compile(r"^[ \t*]*answer\s*[:：]\s*", re.IGNORECASE | re.MULTILINE))
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"[.;](?:\s|$)")
_LATEX_BEFORE = re.compile(r"(?:\\[a-zA-Z]+|[{}^_\\])\s*$")
_LATEX_AFTER = re.compile(r"^\s*(?:\\[a-zA-Z]|[{^_])")
_LIST_BEFORE = re.compile(r"\d\s*,\s*$")
_LIST_AFTER = re.compile(r"^\s*,\s*-?\d")


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each `{` -> index of its `}` (one linear pass; unbalanced ones are absent)."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for m in _BRACE.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.start()
    return pairs


def _boxes(text: str) -> list[tuple[int, str]]:
    """(position, content) of every balanced \\boxed{...} / \\fbox{...} / \\framebox{...} and `\\boxed 5`;
    of boxes nested in one another, the innermost (`\\boxed{\\boxed{7}}` is 7). Linear time: spans are
    found first, and only the boxes kept are sliced."""
    starts = [m for m in _BOX.finditer(text)]
    if not starts:
        return []
    pairs = _closing_braces(text)
    spans: list[tuple[int, int, int]] = []  # (position, content start, content end)
    for m in starts:
        i = m.end()
        j = i
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            end = pairs.get(j)
            if end is not None:
                while spans and spans[-1][1] <= m.start() and end <= spans[-1][2]:
                    spans.pop()  # the enclosing box: this inner one stands for it
                spans.append((m.start(), j + 1, end))
        elif j > i:  # `\boxed 5`: up to the next space or `$`
            word = re.match(r"[^\s$]+", text[j: j + 200])
            if word:
                spans.append((m.start(), j, j + len(word.group(0))))
    return [(pos, text[a:b].strip()) for pos, a, b in spans]


def closed_boxes(text: str) -> list[int]:
    """End offsets (one past the closing brace) of the balanced \\boxed{...} / \\fbox{...} /
    \\framebox{...} in text, in order; an unclosed box is not among them."""
    pairs = _closing_braces(text)
    ends = []
    for m in _BOX.finditer(text):
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{" and j in pairs:
            ends.append(pairs[j] + 1)
    return sorted(ends)


def last_boxed(text: str) -> str | None:
    """Content of the last balanced \\boxed{...} / \\fbox{...} / \\framebox{...} (or `\\boxed 5`)."""
    boxes = _boxes(text)
    return boxes[-1][1] if boxes else None


def _clean_phrase(tail: str) -> str:
    """The answer at the start of the text after a marker: a `$...$` span, else up to the sentence end."""
    tail = tail.split("\n", 1)[0].strip()
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if tail.startswith(left):
            end = tail.find(right, len(left))
            if end > len(left):
                return tail[len(left): end].strip()
    end = _SENTENCE_END.search(tail)
    if end:
        tail = tail[: end.start()]
    return strip_thousands(tail.strip().strip("$").strip().rstrip(".;").strip())


def _last_number(text: str) -> str | None:
    """The last number, when it is unambiguous: not part of a LaTeX construct (`\\frac12`, `2\\frac{1}{2}`)
    and not one of a list or tuple (`(7, 6)`, `2, 3`)."""
    last = None
    for last in _NUMBER.finditer(text):
        pass
    if last is None:
        return None
    number = last.group().rstrip(",")
    before, after = text[max(0, last.start() - 40): last.start()], text[last.end(): last.end() + 40]
    if _LATEX_BEFORE.search(before) or _LATEX_AFTER.search(after):
        return None
    if _LIST_BEFORE.search(before) or _LIST_AFTER.search(after) or ("," in number and not _THOUSANDS.fullmatch(number)):
        return None
    return strip_thousands(number)


def quick_extract(text: str | None, fallback: str = "last_number", finished: bool = True) -> str | None:
    """The final answer in a completion by regular expressions alone, in linear time, or None.

    The last answer marker in the text wins — a \\boxed{} / \\fbox{}, GSM8K's `#### N`, "Final Answer:"
    / "The final answer is" (Minerva's format), "The answer is", a line starting "Answer:" — so an intermediate box does not beat a
    later final-answer line. Without a marker, `fallback="last_number"` takes the last number, but only
    from a finished output (`finished=False`: truncated, it never answered) and only when unambiguous.
    """
    if not text:
        return None
    text = clean_text(text)
    found: list[tuple[int, str]] = list(_boxes(text))
    for pattern in _MARKERS:
        for m in pattern.finditer(text):
            answer = _clean_phrase(text[m.end(): m.end() + 2000])
            if answer:
                found.append((m.start(), answer))
    if found:
        return max(found, key=lambda item: item[0])[1] or None
    if fallback == "last_number" and finished:
        return _last_number(text)
    return None


def strip_thousands(s: str) -> str:
    return s.replace(",", "") if _THOUSANDS.fullmatch(s) else s
