"""Math equivalence by math-verify, in the grader's worker processes (ttscale.graders.pool enforces
their timeout from outside): each worker's limits, answers refused before parsing because checking
them would cost too much (power towers, huge factorials), parsing and comparing under the settings,
and batched extraction."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from ttscale.graders.math_answers import extract_answer
from ttscale.graders.math_text import quick_extract
from ttscale.graders.math_grouping import Budget, bounded
from ttscale.graders.math_rules import MathSettings, normalize_answer, quick_equivalent


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
