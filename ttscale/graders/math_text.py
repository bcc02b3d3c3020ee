"""Math completions as text, in linear time and without sympy: what is not mathematics normalised
(`clean_text`: zero-width and no-break spaces, NUL bytes, Unicode minus signs and vulgar fractions (½),
a currency backslash, `√`, numbers glued to CJK text, a trailing backslash), the text after a reasoning
model's thinking, the boxes of an output and their spans, and `quick_extract`: the regex-only reading
of a final answer used where Math-Verify's extraction cannot run (and for the last-resort reading of a
reference)."""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = {ord(c): None for c in "\u200b\u200c\u200d\u2060\ufeff\u00ad\x00"}
_SPACES = {ord(c): " " for c in "\u00a0\u2007\u202f\u2009\u2002\u2003\u2004\u2005\u2006\u2008\u200a\u3000"}
_SIGNS = {ord("\u2212"): "-", ord("\u2013"): "-", ord("\u2044"): "/", ord("\uff0c"): ","}
THINKING_END = ("</think>",)
_SPECIAL_TOKENS = re.compile(r"<[|｜][^<>\n]{0,60}[|｜]>|</s>|<eos>|<end_of_turn>")
_FRAMED = re.compile(r"\\(?:fbox|framebox)(?![a-zA-Z])")
_CURRENCY = re.compile(r"\\\$(?=\s?\d)")
_ROOT = re.compile(r"\u221a\s*(\d+(?:\.\d+)?|[a-zA-Z]|\([^()]{0,200}\)|\{[^{}]{0,200}\})")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uff01-\uff0f\u3001-\u3011]")
_CJK_AFTER = re.compile(r"([\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u3001-\u3011\uff0c\uff1a])(?=[0-9A-Za-z$\\(\-])")
_CJK_BEFORE = re.compile(r"([0-9A-Za-z$})])(?=[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u3001-\u3011])")


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
    if "\\$" in text:  # `costs \$25`: a currency sign, which Math-Verify's number patterns do not pass
        text = _CURRENCY.sub("", text)
    if "\u221a" in text:  # `2√2`, `√(x+1)`: LaTeX's \sqrt, so that the root is read with its coefficient
        text = _ROOT.sub(lambda m: "\\sqrt{" + m.group(1).strip("(){}") + "}", text)
    if _CJK.search(text):  # `为13/28`: a number glued to CJK text is still a number
        text = _CJK_BEFORE.sub(r"\1 ", _CJK_AFTER.sub(r"\1 ", text))
    return _FRAMED.sub(r"\\boxed", text).rstrip().rstrip("\\").rstrip()


def after_thinking(text: str, thinking_end: tuple[str, ...]) -> str:
    """The text after the last end-of-thinking marker; the thinking itself when nothing follows it (an
    end-of-turn token such as `<|im_end|>` is nothing); the whole text without a marker."""
    end = max(((text.rfind(marker), marker) for marker in thinking_end if marker), default=(-1, ""))
    if end[0] < 0:
        return text
    after = text[end[0] + len(end[1]):]
    return after if _SPECIAL_TOKENS.sub("", after).strip() else text[: end[0]]


BOX = re.compile(r"\\(?:boxed|fbox|framebox)(?![a-zA-Z])")
_BRACE = re.compile(r"[{}]")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_MARKERS = (re.compile(r"####(?=[ \t]*\\?\$?[ \t]*-?\.?\d)[ \t]*"),  # GSM8K's marker takes a number only
            re.compile(r"final answer\s*(?:is\b)?\s*[:：]?\s*", re.IGNORECASE),
            re.compile(r"the answer is\s*[:：]?\s*", re.IGNORECASE),
            re.compile(r"^[ \t*]*answer\s*[:：]\s*", re.IGNORECASE | re.MULTILINE))
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
SENTENCE_END = re.compile(r"[.;](?:\s|$)")
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


def box_spans(text: str) -> list[tuple[int, int, int]]:
    """(position, content start, content end) of every balanced \\boxed{...} / \\fbox{...} /
    \\framebox{...} and `\\boxed 5`; of boxes nested in one another, the innermost (`\\boxed{\\boxed{7}}`
    is 7). Linear time."""
    starts = [m for m in BOX.finditer(text)]
    if not starts:
        return []
    pairs = _closing_braces(text)
    spans: list[tuple[int, int, int]] = []
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
    return spans


def _boxes(text: str) -> list[tuple[int, str]]:
    """(position, content) of every box (see `box_spans`)."""
    return [(pos, text[a:b].strip()) for pos, a, b in box_spans(text)]


def closed_boxes(text: str) -> list[int]:
    """End offsets (one past the closing brace) of the balanced \\boxed{...} / \\fbox{...} /
    \\framebox{...} in text, in order; an unclosed box is not among them."""
    pairs = _closing_braces(text)
    ends = []
    for m in BOX.finditer(text):
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
    end = SENTENCE_END.search(tail)
    if end:
        tail = tail[: end.start()]
    return strip_thousands(tail.strip().strip("$").strip().rstrip(".;").strip())


def _last_number(text: str) -> str | None:
    """The last number, when it is unambiguous: not part of a LaTeX construct (`\\frac12`, `2\\frac{1}{2}`)
    and not one of a list or tuple (`(7, 6)`, `2, 3`)."""
    last = None
    for last in NUMBER.finditer(text):
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


def quick_extract(text: str | None, fallback: str = "last_number", finished: bool = True,
                  thinking_end: tuple[str, ...] = THINKING_END) -> str | None:
    """The final answer in a completion by regular expressions alone, in linear time, or None.

    The last answer marker in the text wins — a \\boxed{} / \\fbox{}, GSM8K's `#### N`, "Final Answer:"
    / "The final answer is" (Minerva's format), "The answer is", a line starting "Answer:" — so an intermediate box does not beat a
    later final-answer line. Without a marker, `fallback="last_number"` takes the last number, but only
    from a finished output (`finished=False`: truncated, it never answered) and only when unambiguous.
    """
    if not text:
        return None
    text = after_thinking(clean_text(text), thinking_end)
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
