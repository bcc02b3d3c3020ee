"""Final answers in math completions, found in time linear in the output's length.

The last answer marker wins (a \\boxed{} / \\fbox{}, GSM8K's `#### N`, "Final Answer:" / "The final
answer is" as Minerva writes it, "The answer is", a line starting "Answer:"); without one, the last
number of a finished output, when it is unambiguous.
"""

from __future__ import annotations

import re

FALLBACKS = ("last_number", "none")

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
    """(position, content) of every balanced \\boxed{...} / \\fbox{...} / \\framebox{...} and `\\boxed 5`."""
    starts = [m for m in _BOX.finditer(text)]
    if not starts:
        return []
    pairs = _closing_braces(text)
    found = []
    for m in starts:
        i = m.end()
        j = i
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            end = pairs.get(j)
            if end is not None:
                found.append((m.start(), text[j + 1: end].strip()))
        elif j > i:  # `\boxed 5`: up to the next space or `$`
            word = re.match(r"[^\s$]+", text[j: j + 200])
            if word:
                found.append((m.start(), word.group(0)))
    return found


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


def extract_answer(text: str | None, fallback: str = "last_number", finished: bool = True) -> str | None:
    """The final answer in a completion, or None.

    The last answer marker in the text wins — a \\boxed{} / \\fbox{}, GSM8K's `#### N`, "Final Answer:"
    / "The final answer is" (Minerva's format), "The answer is", a line starting "Answer:" — so an intermediate box does not beat a
    later final-answer line. Without a marker, `fallback="last_number"` takes the last number, but only
    from a finished output (`finished=False`: truncated, it never answered) and only when unambiguous.
    """
    if not text:
        return None
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
