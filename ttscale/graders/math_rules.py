"""Math equivalence by exact cheap rules, in this process: the settings every check reads, normalised
strings, exact rationals (`1/2`, `\\frac{1}{2}`, `2,125`, `025`), clock times, long digit strings. What
these rules cannot decide goes to math-verify in worker processes (ttscale.graders.math_symbolic)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ttscale.graders.math_answers import _MIXED, _SCALED, FALLBACKS, MATH_WORDS, mixed_number, scaled_number
from ttscale.graders.math_text import THINKING_END, clean_text, strip_thousands


PERCENT_POLICIES = ("strip", "ratio", "either")


@dataclass(frozen=True)
class MathSettings:
    """How answers are compared (every field is a `grader.*` config key; defaults in brackets).

    float_rounding [6], numeric_precision [15], strict [True], allow_set_relation [False]: passed to
      math-verify's `verify` (its own defaults); allow_set_relation=True makes `x \\le 3` equal `(-\\infty, 3]`.
    percent ["strip"]: `50%` equals `50` (strip, the GSM8K/MATH convention), `0.5` (ratio), or both (either).
    max_answer_chars [1000]: longer answers are compared by exact digit/string rules only, else undecided.
    fallback ["last_number"]: answers without an anchor (plain math, a bare number; Math-Verify's
      `try_extract_without_anchor`) count for finished outputs; "none": only anchored answers.
    choices [None]: a multiple-choice benchmark's letters (e.g. "ABCD"): the answer is the chosen letter.
    extract_timeout [5]: seconds for extracting one output inside a worker (then the regex-only
      extraction, counted in stats as extraction_fallbacks).
    thinking_end [("</think>",)]: a reasoning model's answer is read after the last of these markers (its
      thinking only when nothing follows).
    """

    float_rounding: int = 6
    numeric_precision: int = 15
    strict: bool = True
    allow_set_relation: bool = False
    percent: str = "strip"
    max_answer_chars: int = 1000
    fallback: str = "last_number"
    choices: str | None = None
    extract_timeout: int = 5
    thinking_end: tuple[str, ...] = THINKING_END

    def __post_init__(self):
        object.__setattr__(self, "thinking_end", tuple(self.thinking_end))
        if self.percent not in PERCENT_POLICIES:
            raise ValueError(f"percent={self.percent!r}; choose one of: {', '.join(PERCENT_POLICIES)}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback={self.fallback!r}; choose one of: {', '.join(FALLBACKS)}")


# ---- normalisation and exact rules ---------------------------------------------------------------------

_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\{([^{}]*)\}")
_PAREN_NUMBER = re.compile(r"\((-?\d+(?:\.\d+)?)\)")
_FRAC = re.compile(r"-?\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_WITH_WORDS = re.compile(r"(-?(?:\d+(?:\.\d+)?|\.\d+))((?:\s+[a-zA-Z]{2,}\.?)+)")


def normalize_answer(answer: str, percent: str = "strip") -> str:
    """A canonical string: no spaces, `$`, `\\text{}` wrappers, `\\left`, degrees, thousands separators;
    unit words (two letters or more, after a space) dropped after a plain number; percent per policy
    ("ratio" writes `50%` as `50/100`)."""
    s = clean_text(answer).strip()
    s = _TEXT_CMD.sub(r" \1", s)
    for old, new in (("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\left", ""), ("\\right", ""),
                     ("^\\circ", ""), ("^{\\circ}", ""), ("\\$", ""), ("$", ""), ("dfrac", "frac"), ("tfrac", "frac")):
        s = s.replace(old, new)
    s = s.strip().rstrip(".").strip()
    is_percent = s.endswith("%") or s.endswith("percent")
    s = s.replace("\\%", "").replace("%", "").strip()
    m = _WITH_WORDS.fullmatch(s)
    if m and not any(w.strip(".").lower() in MATH_WORDS for w in m.group(2).split()):
        scaled = _SCALED.match(s)  # `10 million` is 10000000, not 10
        s = scaled_number(scaled) if scaled else m.group(1)
    mixed = _MIXED.fullmatch(s)  # `2 1/2` is 5/2, not 21/2
    if mixed:
        s = mixed_number(mixed)
    s = strip_thousands(s).replace(" ", "")  # `2,125` is a number; `32, 349` is not one
    m = _PAREN_NUMBER.fullmatch(s)  # `(042)`, as in `\textbf{(042)}`
    if m:
        s = m.group(1)
    if is_percent and percent == "ratio" and _PLAIN_NUMBER.fullmatch(s):
        s = f"{s}/100"
    return s


def as_rational(s: str) -> Fraction | None:
    """An exact rational for plain numbers, decimals, a/b and \\frac{a}{b}; None otherwise."""
    m = _FRAC.fullmatch(s)
    if m:
        s = ("-" if s.startswith("-") else "") + f"{m.group(1)}/{m.group(2)}"
        s = s.replace("--", "")
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)(/-?\d+(\.\d*)?)?", s) or len(s) > 400:
        return None
    try:
        return Fraction(s) if "/" not in s or "." not in s else Fraction(*(Fraction(p) for p in s.split("/")))
    except (ValueError, ZeroDivisionError):
        return None


def _variants(answer: str, settings: MathSettings) -> list[str]:
    if settings.percent == "either":
        return list(dict.fromkeys([normalize_answer(answer, "strip"), normalize_answer(answer, "ratio")]))
    return [normalize_answer(answer, settings.percent)]


_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", re.IGNORECASE)


def _clock(s: str) -> tuple[int, int, int] | None:
    """A time of day (`12:30`, `7:05 pm`) as (hours, minutes, seconds), pm counted; None when it is
    not a time."""
    m = _CLOCK.fullmatch(s.strip())
    if not m:
        return None
    hours, minutes, seconds = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if minutes > 59 or seconds > 59 or hours > 24:
        return None
    suffix = (m.group(4) or "").lower().replace(".", "")
    if suffix == "pm" and hours < 12:
        hours += 12
    if suffix == "am" and hours == 12:
        hours = 0
    return hours, minutes, seconds


def _primes(s: str) -> int:
    return s.count("'") + s.count("\\prime")


def _decimal_comma(s: str, written: str) -> str | None:
    """`1,22` (a comma then one or two digits: never a thousands separator) as `1.22`, else None; a
    comma with a space after it (`3, 5`) separates a list."""
    m = re.fullmatch(r"(-?\d+),(\d{1,2})", s)
    if m and re.search(r",\s", written):
        return None
    return f"{m.group(1)}.{m.group(2)}" if m else None


def quick_equivalent(gold: str, pred: str, settings: MathSettings | None = None) -> bool | None:
    """True/False when exact cheap rules decide; None when math-verify must decide. Inputs longer than
    settings.max_answer_chars are not for this function (see `long_equivalent`). Times of day
    (`12:30`, `7:05 pm`) compare as times."""
    settings = settings or MathSettings()
    plain = normalize_answer(gold), normalize_answer(pred)  # once: this runs for every pair in the caller
    clocks = _clock(plain[0]), _clock(plain[1])
    if clocks[0] is not None and clocks[1] is not None:
        return clocks[0] == clocks[1]
    if _primes(plain[0]) != _primes(plain[1]):  # f'(x) is not f(x) (math-verify drops the prime)
        return False
    comma = _decimal_comma(plain[0], gold), _decimal_comma(plain[1], pred)
    if (comma[0] is None) != (comma[1] is None):  # `1,22` against `1.22`: a decimal comma
        other = plain[1] if comma[0] is not None else plain[0]
        if re.fullmatch(r"-?\d+\.\d+", other):
            return Fraction(comma[0] or comma[1]) == Fraction(other)
    undecided = False
    for a in _variants(gold, settings):
        for b in _variants(pred, settings):
            if a == b:
                return True
            ra, rb = as_rational(a), as_rational(b)
            if ra is not None and rb is not None:
                if ra == rb:
                    return True
                if "." in a or "." in b:  # a decimal approximation: math-verify's tolerance decides
                    undecided = True
            else:
                undecided = True
    return None if undecided else False


_DIGITS = re.compile(r"-?\d+(?:\.\d+)?")


def long_equivalent(gold: str, pred: str) -> bool | None:
    """Answers over the length cap: plain numbers compare exactly, identical strings are equal; anything
    else is undecided. Linear time."""
    a, b = "".join(gold.split()), "".join(pred.split())
    if a == b:
        return True
    if _DIGITS.fullmatch(a) and _DIGITS.fullmatch(b):
        try:
            return Decimal(a) == Decimal(b)
        except InvalidOperation:
            return None
    return None


# ---- symbolic work, run inside worker processes ----------------------------------------------------------
