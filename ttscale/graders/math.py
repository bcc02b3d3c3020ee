"""Math answers: extraction from model output, and equivalence that never hangs and never guesses.

A verdict is True, False, or None: *undecided* — the check could not run (its worker timed out, died
or could not start; an answer was too long to check; the reference could not be read). Undecided
verdicts are counted and reported, never read as "not equal".

Extraction lives in ttscale.graders.math_answers (re-exported here). Equivalence
first tries exact cheap rules in this process (normalised strings, exact rationals: `1/2`, `\\frac{1}{2}`,
`2,125`, `025`); everything else goes to math-verify in worker processes whose timeout is enforced from
outside (ttscale.graders.pool). Numbers written as decimal approximations (`0.0833333`, `1.41421356`)
are always compared by math-verify, so one numeric-tolerance policy (its `float_rounding`) applies to
rationals and irrationals alike.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ttscale.graders.math_answers import (_MIXED, _SCALED, FALLBACKS, MATH_WORDS, THINKING_END, clean_text, extract_answer,  # noqa: F401
                                          last_boxed, mixed_number, quick_extract, scaled_number, strip_thousands)
from ttscale.graders.math_grouping import Budget, bounded, fingerprint_many, group_distinct, verify_many
from ttscale.graders.pool import WorkerError, WorkerPool

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

def _init_worker() -> None:
    """Once per worker: math-verify imported and warmed (its LaTeX parser and sympy's evaluation load
    on first use: that second belongs to the worker's start, never to the first answer's budget), and
    its memory bounded (a check that would need more fails with MemoryError, undecided, instead of
    taking the machine)."""
    import resource

    _quiet_math_verify()
    try:
        from ttscale.graders.math_grouping import _fingerprint

        warm = _parse_cached("\\frac{\\sqrt{2}}{2}+x")
        _fingerprint(warm)
        _verify(warm, _parse_cached("x+\\frac{1}{\\sqrt{2}}"), MathSettings())
        _parse_cached.cache_clear()
    except BaseException:  # noqa: BLE001  (warming is an optimisation; the checks report their own failures)
        pass

    try:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ValueError, OSError):
        pass


def _quiet_math_verify() -> None:
    """Our own timers bound parse and verify (math-verify's alarm would cancel an outer bound), so its
    one-time warning that its timeout is off says nothing here."""
    import math_verify.grader
    import math_verify.parser

    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True


WORKER_MEMORY_BYTES = 4 << 30
PARSE_SECONDS = 5  # math-verify's own default bound for one parse or one comparison
_POWER_CHAIN = re.compile(r"\d+(?:\s*(?:\^|\*\*)\s*\{?\s*\(?\d+)+")  # 9^{9^{9}}, 2^3^4, 2**10**7
_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*(\d{7,})")  # 2^{10000000}
# a factorial or binomial of a large literal number (`100000!`, `(10^{6})!`, `\binom{10^{8}}{3}`); `(n+1)!` is ordinary
_FACTORIAL = re.compile(r"\d{5,}\s*!|\\binom\s*\{[^{}]*(?:\d\s*\^|\d{6,})|\\(?:binom|choose)\b.*\d{6,}")
_GROUP_FACTORIAL = re.compile(r"[({]([^!]{0,80}?)[)}]\s*!")
_LARGE_LITERAL = re.compile(r"\d\s*\^|\d{5,}")
MAX_EXPONENT = 10 ** 6  # a power whose exponent (evaluated from the top of its tower) is larger is refused
MAX_DIGITS = 100_000  # a power tower whose value has more digits is refused (2^{2^{2^{2^2}}} has 19,729)


def _tower_digits(numbers: list[int]) -> float:
    """How many digits a power tower's value has, evaluated from its top (math.inf past any reach):
    its cost, measured without evaluating it."""
    import math

    exponent: float = numbers[-1]
    for base in reversed(numbers[:-1]):
        if exponent > MAX_EXPONENT and base > 1:
            return math.inf
        digits = exponent * math.log10(base) if base > 1 else 1
        exponent = base ** int(exponent) if digits < 300 else math.inf
    return digits


def too_costly(answer: str) -> str | None:
    """Why evaluating an answer could take unbounded time or memory, or None. The cost is measured, not
    guessed from the shape: a numeric power tower whose value has over MAX_DIGITS digits (`7^{7^{7}}`;
    `e^{-x^2}` and `2^{3^2}` are ordinary), an exponent of over a million, a factorial or binomial of a
    large number. Such answers are compared by their strings only; otherwise undecided."""
    for chain in _POWER_CHAIN.finditer(answer):
        numbers = [int(n) for n in re.findall(r"\d+", chain.group())]
        if len(numbers) > 1 and _tower_digits(numbers) > MAX_DIGITS:
            return "a power tower" if len(numbers) > 2 else f"a power of over {MAX_DIGITS:,} digits"
    if _BIG_EXPONENT.search(answer):
        return "an exponent of over a million"
    if _FACTORIAL.search(answer) or any(_LARGE_LITERAL.search(m.group(1)) for m in _GROUP_FACTORIAL.finditer(answer)):
        return "a factorial or binomial of a large number"
    return None


_DELIMITER = re.compile(r"(?<!\\)\$")


class _Unread(Exception):
    """math-verify could not decide how to read an answer (a timeout or an error): undecided."""


@functools.lru_cache(maxsize=4096)
def _parse_cached(answer: str):
    """math-verify's parse of one answer (a tuple; empty: it reads as nothing), or the reason it
    could not run (a str); memoised in the worker process (parsing is ~95% of a symbolic check, and a
    problem's reference and its frequent answers come back in every batch)."""
    from math_verify import parse

    _quiet_math_verify()
    costly = too_costly(answer)
    if costly:
        return f"too costly to evaluate ({costly})"
    # an answer that is itself math-delimited or boxed is read as written; anything else inside a box
    # (an escaped dollar, `\\$32`, is a currency sign, not a delimiter)
    text = answer if (_DELIMITER.search(answer) or "\\boxed" in answer) else f"\\boxed{{{answer}}}"
    try:  # bounded by our own timer (math-verify's alarm would replace an outer bound): 5 s, or less
        return tuple(bounded(lambda: parse(text, parsing_timeout=None, raise_on_error=True), PARSE_SECONDS))
    except BaseException as exc:  # math-verify's TimeoutException is a BaseException
        if isinstance(exc, (KeyboardInterrupt, Budget)):  # a timeout is not remembered: a later call may have longer
            raise
        return f"math-verify could not read it: {type(exc).__name__}"


def _parse(answer: str):
    parsed = _parse_cached(answer)
    if isinstance(parsed, str):
        raise _Unread(parsed)
    return parsed


def _verify(gold_parsed, pred_parsed, settings: MathSettings) -> bool:
    from math_verify import verify

    try:
        return bool(bounded(lambda: verify(list(gold_parsed), list(pred_parsed), float_rounding=settings.float_rounding,
                                           numeric_precision=settings.numeric_precision, strict=settings.strict,
                                           allow_set_relation_comp=settings.allow_set_relation, timeout_seconds=None,
                                           raise_on_error=True), PARSE_SECONDS))
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, Budget)):
            raise
        raise _Unread(f"math-verify could not compare them: {type(exc).__name__}") from None


_PERCENT = re.compile(r"\s*(?:\\?%|\\text\{\s*\\?%\s*\}|\s+percent)\s*(\}?)\s*$")


def _percent_free(answer: str, percent: str) -> str:
    """A trailing percent sign dropped (policy "strip") or read as /100 ("ratio"; "either": the quick
    rules tried both): the LaTeX parser under the ANTLR runtime hydra pins cannot read `25\\%`."""
    if not _PERCENT.search(answer):
        return answer
    closing = _PERCENT.search(answer).group(1)  # `\\boxed{33\\frac{1}{3}\\%}`: the sign inside the box
    value = _PERCENT.sub("", answer)
    if closing:
        return f"{value}\\cdot\\frac{{1}}{{100}}}}" if percent == "ratio" else value + "}"
    return f"({value})/100" if percent == "ratio" else value


def _unclosed_box(answer: str) -> bool:
    return answer.startswith("\\boxed") and answer.count("{") > answer.count("}")


def symbolic_check(gold: str, pred: str, settings: MathSettings | None = None, either: bool = False):
    """(verdict, why undecided): math-verify on two extracted answers (runs in a worker). Undecided when
    the reference cannot be read, math-verify timed out or failed, or an answer is too costly; an
    answer that reads as nothing is wrong unless it is the reference's string. either: equal when
    math-verify accepts either direction (grouping for the vote)."""
    settings = settings or MathSettings()
    decided = quick_equivalent(gold, pred, settings)
    if decided is not None:
        return decided, None
    if settings.choices:
        return normalize_answer(gold).upper() == normalize_answer(pred).upper(), None
    try:
        g = _parse(_percent_free(gold, settings.percent))
        if not g:
            return None, "the reference cannot be read"
        p = _parse(_percent_free(pred, settings.percent))
        if not p or all(isinstance(x, str) for x in p) or _unclosed_box(pred):
            if not pred.startswith("\\boxed"):
                return False, None
            return None, "the boxed answer cannot be read"  # (`\\frac{1}{}`): no verdict, never a prose number
        if _verify(g, p, settings):
            return True, None
        return (_verify(p, g, settings) if either else False), None
    except _Unread as exc:
        return None, str(exc)
    except Budget:
        return None, f"math-verify ran past its {PARSE_SECONDS} s"


def symbolic_equivalent(gold: str, pred: str, settings: MathSettings | None = None) -> bool | None:
    return symbolic_check(gold, pred, settings)[0]


def symbolic_checks_many(pairs: Sequence[tuple[str, str]], settings: MathSettings, either: bool = False):
    """A worker's share of a batch, in one round trip."""
    return [symbolic_check(g, p, settings, either) for g, p in pairs]


def symbolic_equivalent_many(pairs: Sequence[tuple[str, str]], settings: MathSettings) -> list[bool | None]:
    return [v for v, _ in symbolic_checks_many(pairs, settings)]


def extract_many(items: Sequence[tuple[str | None, bool]], settings: MathSettings) -> list[tuple[str | None, bool]]:
    """(answer, read by the fallback) for a worker's share of outputs (text, finished). Each output's
    extraction is bounded by settings.extract_timeout seconds (a timer in the worker); one that runs
    out or fails is caught here, in the worker, and read by the linear regex-only extraction
    (`quick_extract`), so a hostile output costs its own bound and never the worker."""
    out = []
    for text, finished in items:
        try:
            read = functools.partial(extract_answer, text, settings.fallback, finished, settings.choices, None,
                                     settings.thinking_end)
            out.append((bounded(read, settings.extract_timeout) if settings.extract_timeout else read(), False))
        except (Budget, RecursionError, MemoryError, ValueError, TypeError, IndexError, KeyError, AttributeError,
                ArithmeticError):
            out.append((None if settings.choices else quick_extract(text, settings.fallback, finished,
                                                                    settings.thinking_end), True))
    return out


def group_answers(answers: Sequence[str | None], settings: MathSettings | None = None,
                  check=None) -> list[int | None]:
    """Group labels (first-seen order); None stays None. Order-free: the distinct answers are grouped
    in a canonical order, and an answer joins the first representative it is equivalent to (either
    direction). `check(pairs) -> verdicts` decides the pairs the cheap rules leave open, one bound per
    pair (MathGrader passes its worker pool); by default math-verify in this process. An undecided
    pair stays apart; the other answers are still grouped symbolically."""
    settings = settings or MathSettings()
    check = check or (lambda pairs: [symbolic_check(a, b, settings, either=True)[0] for a, b in pairs])
    distinct = sorted({a for a in answers if a is not None},
                      key=lambda a: (normalize_answer(a[: settings.max_answer_chars]), a))
    reps: list[str] = []
    label_of: dict[str, int] = {}
    for answer in distinct:
        label, open_pairs = None, []
        for index, rep in enumerate(reps):
            if max(len(rep), len(answer)) > settings.max_answer_chars:
                decided = long_equivalent(rep, answer)
            else:
                decided = quick_equivalent(rep, answer, settings)
                if decided is None:
                    open_pairs.append(index)
                    continue
            if decided:
                label = index
                break
        if label is None and open_pairs:
            verdicts = check([(reps[i], answer) for i in open_pairs])
            label = next((i for i, v in zip(open_pairs, verdicts) if v is True), None)
        if label is None:
            label = len(reps)
            reps.append(answer)
        label_of[answer] = label
    return _first_seen([None if a is None else label_of[a] for a in answers])


def _first_seen(labels: Sequence[int | None]) -> list[int | None]:
    renumber: dict[int, int] = {}
    return [None if x is None else renumber.setdefault(x, len(renumber)) for x in labels]


def _group_by_normalized(answers: Sequence[str | None], percent: str) -> list[int | None]:
    seen: dict[str, int] = {}
    return [None if a is None else seen.setdefault(normalize_answer(a, percent), len(seen)) for a in answers]


def _did_not_run(exc: WorkerError) -> str:
    return f"the check did not run: {exc}"


class MathGrader:
    """Equivalence checks on a pool of worker processes, each call bounded by `timeout` seconds.

    Use one per run (the runtime makes one) and close it, or use it as a context manager. `stats`
    counts undecided checks, worker timeouts and failures, and groupings that fell back to strings.
    """

    def __init__(self, workers: int = 2, timeout: float = 10.0, settings: MathSettings | None = None,
                 group_timeout: float = 2.0, group_budget: float = 0.5, **options):
        self.settings = settings or MathSettings(**options)
        self.group_timeout = group_timeout  # seconds for grouping one problem's answers, all checks together
        self.group_budget = group_budget  # seconds for parsing one answer, or checking one pair, when grouping
        self._memo: dict[tuple[str, str], bool | None] = {}  # grouping verdicts already known (None: ran out)
        self._unread: dict[str, str] = {}  # answers that could not be parsed within group_budget
        self.pool = WorkerPool(size=workers, timeout=timeout, initializer="ttscale.graders.math:_init_worker")
        self.undecided = 0
        self.grouping_fallbacks = 0  # grouping checks that could not run (those pairs stay apart)
        self.extraction_fallbacks = 0  # outputs read by the regex-only extraction (a worker failed)
        self.last_reason: str | None = None  # of the latest undecided check (a result keeps its own)

    # -- equivalence -------------------------------------------------------------------------------
    def equivalent(self, gold: str | None, pred: str | None) -> bool | None:
        """True, False, or None when the check could not be decided (counted in `stats`)."""
        return self.grade_batch([(gold, pred)])[0]

    def grade_batch(self, pairs: Sequence[tuple[str | None, str | None]]) -> list[bool | None]:
        """Equivalence of many (gold, pred) pairs (None: undecided; see `checks` for why)."""
        return [verdict for verdict, _ in self.checks(pairs)]

    def checks(self, pairs: Sequence[tuple[str | None, str | None]], either: bool = False,
               count: bool = True) -> list[tuple[bool | None, str | None]]:
        """(verdict, why it is undecided) for each pair: the cheap rules here, the rest in one round trip
        per worker (a chunk that fails is retried pair by pair, so one pathological pair costs only itself)."""
        out: list[tuple[bool | None, str | None]] = []
        pending: list[int] = []
        cap = self.settings.max_answer_chars
        for i, (gold, pred) in enumerate(pairs):
            if gold is None or pred is None:
                out.append((False, None))
            elif max(len(gold), len(pred)) > cap:
                verdict = long_equivalent(gold, pred)
                out.append((verdict, None if verdict is not None else f"an answer is over grader.max_answer_chars={cap}"))
            else:
                verdict = quick_equivalent(gold, pred, self.settings)
                out.append((verdict, None))
                if verdict is None:
                    pending.append(i)
        if pending:
            chunks = [pending[k:: self.pool.size] for k in range(min(self.pool.size, len(pending)))]
            outcomes = self.pool.map(symbolic_checks_many,
                                     [([pairs[i] for i in chunk], self.settings, either) for chunk in chunks],
                                     on_error=lambda exc: exc)
            for chunk, outcome in zip(chunks, outcomes):
                if isinstance(outcome, WorkerError):
                    checked = ([self._one(pairs[i], either) for i in chunk] if len(chunk) > 1
                               else [(None, _did_not_run(outcome))])
                else:
                    checked = [(v, why) for v, why in outcome]
                for i, check in zip(chunk, checked):
                    out[i] = check
        if count:
            for verdict, reason in out:
                if verdict is None:
                    self.undecided += 1
                    self.last_reason = reason
        return out

    def _one(self, pair: tuple[str, str], either: bool = False) -> tuple[bool | None, str | None]:
        try:
            return tuple(self.pool.call(symbolic_check, pair[0], pair[1], self.settings, either))
        except WorkerError as exc:
            return None, _did_not_run(exc)

    # -- grouping ---------------------------------------------------------------------------------
    def group(self, answers: Sequence[str | None]) -> list[int | None]:
        """Equivalence-group labels, independent of the answers' order, in bounded time (see
        ttscale.graders.math_grouping): each distinct answer parsed once within `group_budget` seconds,
        only pairs whose values agree checked by math-verify, the whole problem within `group_timeout`
        seconds. A pair that could not be checked stays apart (counted in `stats` as a grouping
        fallback); answers that could not be read in their budget are remembered and not read again."""
        present = [a for a in answers if a is not None]
        if len({normalize_answer(a, self.settings.percent) for a in present}) <= 1:
            return _group_by_normalized(answers, self.settings.percent)
        cap = self.settings.max_answer_chars
        distinct = sorted(set(present), key=lambda a: (normalize_answer(a[:cap]), a))
        self.pool.start()  # a worker's start (imports, a second or more) is not the problem's grouping time
        until = time.time() + self.group_timeout
        prints = self._fingerprints([a for a in distinct if len(a) <= cap and a not in self._unread], until)
        prints = [prints.get(a) or ("unread", "long or unread") for a in distinct]

        def quick(a: str, b: str) -> bool | None:
            if max(len(a), len(b)) > cap:
                return long_equivalent(a, b)
            if (a, b) in self._memo or (b, a) in self._memo:  # (a pair that ran out before: apart, not checked again)
                return self._memo.get((a, b), self._memo.get((b, a))) or False
            return quick_equivalent(a, b, self.settings)

        labels, undecided = group_distinct(distinct, prints, quick, lambda pairs: self._verify_pairs(pairs, until))
        self.grouping_fallbacks += undecided
        label_of = dict(zip(distinct, labels))
        return _first_seen([None if a is None else label_of[a] for a in answers])

    def _fingerprints(self, todo: list[str], until: float) -> dict[str, tuple]:
        if not todo:
            return {}
        chunks = [todo[k:: self.pool.size] for k in range(min(self.pool.size, len(todo)))]
        outcomes = self.pool.map(fingerprint_many, [(chunk, self.settings, self.group_budget, until) for chunk in chunks],
                                 on_error=lambda exc: exc, timeout=max(0.1, until - time.time()) + 1.0)
        prints: dict[str, tuple] = {}
        for chunk, outcome in zip(chunks, outcomes):
            for i, answer in enumerate(chunk):
                fp = ("late", str(outcome)) if isinstance(outcome, WorkerError) else outcome[i]
                prints[answer] = fp
                if fp[0] == "unread":
                    self._unread[answer] = str(fp[1])
        return prints

    def _verify_pairs(self, pairs: list[tuple[str, str]], until: float) -> list[bool | None]:
        chunks = [list(range(k, len(pairs), self.pool.size)) for k in range(min(self.pool.size, len(pairs)))]
        outcomes = self.pool.map(verify_many, [([pairs[i] for i in chunk], self.settings, self.group_budget, until)
                                               for chunk in chunks],
                                 on_error=lambda exc: exc, timeout=max(0.1, until - time.time()) + 1.0)
        verdicts: list[bool | None] = [None] * len(pairs)
        if len(self._memo) > 100_000:
            self._memo.clear()
        for chunk, outcome in zip(chunks, outcomes):
            if isinstance(outcome, WorkerError):
                continue
            for i, verdict in zip(chunk, outcome):
                verdicts[i] = verdict
                self._memo[pairs[i]] = verdict  # None too: a pair that ran out is not tried again
        return verdicts

    # -- the grader contract shared with CodeGrader -------------------------------------------------
    def extract(self, text: str | None, problem=None, finished: bool = True) -> str | None:
        """The final answer of a completion (Math-Verify's extraction in a worker, bounded; see
        ttscale.graders.math_answers); `finished=False` (truncated) takes only anchored answers."""
        return self.extract_many([text], [finished])[0]

    def extract_many(self, texts: Sequence[str | None], finished: Sequence[bool]) -> list[str | None]:
        """Answers of many completions in one round trip per worker. An output whose extraction fails or
        times out is read by the regex-only extraction (counted as an extraction fallback)."""
        out: list[str | None] = [None] * len(texts)
        todo = [i for i, t in enumerate(texts) if t]
        if not todo:
            return out
        chunks = [todo[k:: self.pool.size] for k in range(min(self.pool.size, len(todo)))]
        outcomes = self.pool.map(extract_many, [([(texts[i], finished[i]) for i in chunk], self.settings)
                                                for chunk in chunks], on_error=lambda exc: exc)
        for chunk, outcome in zip(chunks, outcomes):
            if isinstance(outcome, WorkerError):
                outcome = [self._extract_one(texts[i], finished[i]) for i in chunk]
            for i, (answer, fell_back) in zip(chunk, outcome):
                out[i] = answer
                self.extraction_fallbacks += fell_back
        return out

    def _extract_one(self, text: str, finished: bool) -> tuple[str | None, bool]:
        try:
            return self.pool.call(extract_many, [(text, finished)], self.settings)[0]
        except WorkerError:
            if self.settings.choices:
                return None, True
            return quick_extract(text, self.settings.fallback, finished, self.settings.thinking_end), True

    async def agroup(self, answers: Sequence[str | None], problem=None) -> list[int | None]:
        return await asyncio.to_thread(self.group, answers)

    async def agrade(self, result, problem) -> None:
        """Mark the chosen answer and every candidate (one check per answer group) against the reference."""
        await asyncio.to_thread(grade_math_result, self, result, problem)

    async def aequivalent(self, gold: str | None, pred: str | None) -> bool | None:
        return await asyncio.to_thread(self.equivalent, gold, pred)

    def stats(self) -> dict[str, int]:
        return {"undecided_checks": self.undecided, "worker_timeouts": self.pool.timeouts,
                "worker_failures": self.pool.failures, "grouping_fallbacks": self.grouping_fallbacks,
                "extraction_fallbacks": self.extraction_fallbacks}

    def options(self) -> dict:
        return asdict(self.settings)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grade_math_result(grader: MathGrader, result, problem) -> None:
    """result.correct / candidate.correct: True, False, or None with result.undecided saying why."""
    result.reference = problem.answer
    if problem.answer is None:
        return
    answers = list(dict.fromkeys([c.answer for c in result.candidates if c.answer is not None]
                                 + ([result.answer] if result.answer is not None else [])))
    gold = reference_answer(problem.answer, grader.settings.choices)
    checks = dict(zip(answers, grader.checks([(gold, a) for a in answers])))
    result.correct = False if result.answer is None else checks[result.answer][0]
    for candidate in result.candidates:
        candidate.correct = False if candidate.answer is None else checks[candidate.answer][0]
    if result.correct is None:
        result.undecided = checks[result.answer][1]


def reference_answer(gold: str, choices: str | None = None) -> str:
    """A dataset's reference as an answer: one written with math delimiters or boxes (`$...$`,
    `\\boxed{1}, \\boxed{2}`) is read like a model's output (Math-Verify's extraction: several boxes
    form one set); anything else is taken as it is. With `choices` (multiple choice), a reference that
    names its option (`(D) Alina`, `D. 12`, `The answer is D`) is its letter."""
    text = clean_text(gold).strip()
    if choices:
        letters = "".join(re.escape(c) for c in choices)
        named = re.fullmatch(rf"\(?([{letters}])\)?(?:[\s.:)].*)?", text, re.S)
        if named:
            return named.group(1)
        letter = extract_answer(text, choices=choices)
        return letter or text
    if any(mark in text for mark in ("$", "\\boxed", "\\fbox", "\\(", "\\[")):
        try:  # written like a model's output: read it the same way (trusted data, once per problem)
            extracted = extract_answer(text, all_boxes=True)
            if extracted:
                return extracted
        except Exception:  # noqa: BLE001  (then the plain unwrapping below)
            pass
    if "\\boxed" in text or "\\fbox" in text:
        boxed = last_boxed(text)
        if boxed:
            return boxed
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
            return text[len(left): len(text) - len(right)].strip()
    return text


def is_equivalent(gold: str | None, pred: str | None, timeout: float = 10.0, **options) -> bool | None:
    """Whether two answers are mathematically equivalent: True, False, or None (undecided), bounded by
    `timeout` seconds. Works from scripts without a `__main__` guard and from `python -`."""
    settings = MathSettings(**options)
    if gold is None or pred is None:
        return False
    if max(len(gold), len(pred)) > settings.max_answer_chars:
        return long_equivalent(gold, pred)
    decided = quick_equivalent(gold, pred, settings)
    if decided is not None:
        return decided
    with MathGrader(workers=1, timeout=timeout, settings=settings) as grader:
        return grader.equivalent(gold, pred)


def grade_batch(pairs: Sequence[tuple[str | None, str | None]], workers: int = 2, timeout: float = 10.0,
                **options) -> list[bool | None]:
    """Equivalence of many (gold, pred) pairs in parallel worker processes (None: undecided)."""
    with MathGrader(workers=workers, timeout=timeout, **options) as grader:
        return grader.grade_batch(pairs)
