"""Grouping a problem's answers for the vote, in bounded time, whatever the answers are.

A vote over 64 distinct answers needs up to 2,016 equivalence checks; one hostile answer (a huge
expression) can make each check that touches it run to its timeout. So the grouping:

1. parses each distinct answer once, in the workers, within `budget` seconds per answer, and takes a
   numeric fingerprint of it (its value, at fixed points for its free symbols); an answer that cannot
   be parsed in its budget is memoised as unread and stays in a group of its own;
2. checks with math-verify only the pairs whose fingerprints agree (two numbers that differ cannot be
   equal) or that have none (sets, intervals, relations, matrices), each pair within `budget`,
   all pairs of the problem within `deadline` seconds; a pair left unchecked stays apart and is counted;
3. joins each answer, in a canonical order (so the labels do not depend on the answers' order), to
   the first earlier representative it equals (either direction).

The functions named `*_many` run inside the grader's worker processes (ttscale.graders.pool).
"""

from __future__ import annotations

import cmath
import signal
import threading
import time
from collections.abc import Callable, Sequence

# free symbols take these values in a fingerprint (any fixed, generic points serve)
_POINTS = (0.5772156649, 1.3247179572, 2.7182818285, 0.6931471806, 1.6180339887)
_TOLERANCE = 1e-4  # relative: looser than any rounding math-verify applies, so no equal pair is cut


class Budget(BaseException):
    """A bounded call ran out of its seconds (a BaseException, so that no library's `except Exception` eats it)."""


def _ring(signum, frame):
    raise Budget


def bounded(fn: Callable, seconds: float):
    """fn() within `seconds` of wall time, by an interval timer (raises Budget when it runs out). Nested
    bounds keep the outer one: the inner gets at most what the outer has left, and the outer's rest is
    set again after. Off the main thread (signals cannot be used there) fn() runs unbounded: callers
    there are bounded from outside (the worker pool)."""
    if threading.current_thread() is not threading.main_thread():
        return fn()
    outer, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _ring)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def _fingerprint(parsed) -> tuple | None:
    """A numeric fingerprint of a parsed answer (its value at fixed points), or None when it is not a
    plain expression (a set, an interval, a relation, a matrix, a string)."""
    import sympy

    expr = next((x for x in parsed if not isinstance(x, str)), None)
    if isinstance(expr, sympy.Interval):  # `(0, 1)` reads as an open interval: its ends and which are open
        ends = _value(expr.start), _value(expr.end)
        if None in ends:
            return None
        return ("interval", (bool(expr.left_open), bool(expr.right_open)), ends)
    if isinstance(expr, (sympy.FiniteSet, sympy.Tuple)) and 0 < len(expr.args) <= 64:  # `(1, 2)`, `{1, 2}`, `1, 2`
        values = [_value(x) for x in expr.args]  # as a multiset: a tuple may equal a set of the same items
        if any(v is None for v in values):
            return None
        return ("many", tuple(sorted(values, key=lambda v: (v[0], v[1].real, v[1].imag))))
    return _value(expr)


def _value(expr) -> tuple | None:
    import sympy

    if not isinstance(expr, sympy.Expr) or isinstance(expr, (sympy.MatrixBase, sympy.Interval)):
        return None
    symbols = sorted(expr.free_symbols, key=str)
    if len(symbols) > len(_POINTS):
        return None
    value = complex(expr.evalf(15, subs=dict(zip(symbols, _POINTS))))
    if cmath.isnan(value) or cmath.isinf(value):
        return None
    return (len(symbols) > 0, value)


def fingerprint_many(answers: Sequence[str], settings, budget: float, until: float) -> list[tuple[str, object]]:
    """("num", fingerprint) | ("any", None) | ("unread", why) for each answer, each within `budget`
    seconds and all by the wall-clock time `until` (time.time())."""
    from ttscale.graders.math_symbolic import _parse_cached, _percent_free

    out: list[tuple[str, object]] = []
    for answer in answers:
        left = until - time.time()
        if left <= 0:
            out.append(("late", "the problem's grouping time ran out"))
            continue
        budget = min(budget, left)
        try:
            parsed = bounded(lambda a=answer: _parse_cached(_percent_free(a, settings.percent)), budget)
            if isinstance(parsed, str) or not parsed:
                out.append(("unread", parsed or "reads as nothing"))
                continue
            fingerprint = bounded(lambda p=parsed: _fingerprint(p), budget)
            out.append(("num", fingerprint) if fingerprint is not None else ("any", None))
        except Budget:
            out.append(("unread", f"not parsed within {budget:g} s"))
        except (TypeError, ValueError, ArithmeticError, AttributeError, RecursionError, MemoryError):
            out.append(("any", None))
    return out


def verify_many(pairs: Sequence[tuple[str, str]], settings, budget: float, until: float) -> list[bool | None]:
    """math-verify on each pair, either direction, each within `budget` seconds and all by `until`
    (None: it did not finish)."""
    from ttscale.graders.math_symbolic import symbolic_check

    out: list[bool | None] = []
    for a, b in pairs:
        left = until - time.time()
        if left <= 0:
            out.append(None)
            continue
        budget = min(budget, left)
        try:
            out.append(bounded(lambda a=a, b=b: symbolic_check(a, b, settings, either=True)[0], budget))
        except Budget:
            out.append(None)
    return out


def _close(a: tuple, b: tuple) -> bool:
    if a[0] == "interval" or b[0] == "interval":
        return a[0] == b[0] and a[1] == b[1] and all(_close(x, y) for x, y in zip(a[2], b[2]))
    if a[0] == "many" or b[0] == "many":  # several values: the same count, each close to its partner
        if a[0] != b[0]:
            return len(a[1]) == 1 and _close(a[1][0], b) if a[0] == "many" else len(b[1]) == 1 and _close(a, b[1][0])
        return len(a[1]) == len(b[1]) and all(_close(x, y) for x, y in zip(a[1], b[1]))
    if a[0] != b[0]:  # an expression in x against a number
        return False
    return abs(a[1] - b[1]) <= _TOLERANCE * max(1.0, abs(a[1]), abs(b[1]))


def group_distinct(distinct: Sequence[str], prints: Sequence[tuple[str, object]], quick, verify) -> tuple[list[int], int]:
    """Labels for `distinct` (already in canonical order) and the number of pairs left undecided.

    quick(a, b) -> True/False/None (the cheap exact rules); verify(pairs) -> verdicts for the pairs the
    fingerprints leave open, all at once. An answer joins the first earlier representative it equals."""
    n = len(distinct)
    candidates: list[tuple[int, int]] = []
    decided: dict[tuple[int, int], bool | None] = {}
    for j in range(n):
        for i in range(j):
            verdict = quick(distinct[i], distinct[j])
            if verdict is not None:
                decided[i, j] = verdict
                continue
            (kind_i, fp_i), (kind_j, fp_j) = prints[i], prints[j]
            if "unread" in (kind_i, kind_j):
                decided[i, j] = False  # unreadable in its budget (memoised): it stays apart (strings were compared)
            elif "late" in (kind_i, kind_j):
                decided[i, j] = None  # the problem's grouping time ran out before it was read
            elif kind_i == kind_j == "num" and not _close(fp_i, fp_j):
                decided[i, j] = False  # two values that differ are never equal
            else:
                candidates.append((i, j))
    verdicts = verify([(distinct[i], distinct[j]) for i, j in candidates]) if candidates else []
    undecided = sum(1 for v in decided.values() if v is None)
    for pair, verdict in zip(candidates, verdicts):
        decided[pair] = bool(verdict)
        undecided += verdict is None
    labels: list[int] = []
    reps: list[int] = []
    for j in range(n):
        label = next((labels[r] for r in reps if decided.get((r, j))), None)
        if label is None:
            label = len(reps)
            reps.append(j)
        labels.append(label)
    return labels, undecided
