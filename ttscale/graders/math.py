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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ttscale.graders.math_answers import FALLBACKS, extract_answer, last_boxed, strip_thousands  # noqa: F401
from ttscale.graders.pool import WorkerError, WorkerPool

PERCENT_POLICIES = ("strip", "ratio", "either")


@dataclass(frozen=True)
class MathSettings:
    """How answers are compared (every field is a `grader.*` config key; defaults in brackets).

    float_rounding [6], numeric_precision [15], strict [True], allow_set_relation [False]: passed to
      math-verify's `verify` (its own defaults); allow_set_relation=True makes `x \\le 3` equal `(-\\infty, 3]`.
    percent ["strip"]: `50%` equals `50` (strip, the GSM8K/MATH convention), `0.5` (ratio), or both (either).
    max_answer_chars [1000]: longer answers are compared by exact digit/string rules only, else undecided.
    fallback ["last_number"]: with no answer marker, the last number of a finished output when it is
      unambiguous (not inside LaTeX, not one of a list); "none": no answer.
    """

    float_rounding: int = 6
    numeric_precision: int = 15
    strict: bool = True
    allow_set_relation: bool = False
    percent: str = "strip"
    max_answer_chars: int = 1000
    fallback: str = "last_number"

    def __post_init__(self):
        if self.percent not in PERCENT_POLICIES:
            raise ValueError(f"percent={self.percent!r}; choose one of: {', '.join(PERCENT_POLICIES)}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback={self.fallback!r}; choose one of: {', '.join(FALLBACKS)}")


# ---- normalisation and exact rules ---------------------------------------------------------------------

_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_FRAC = re.compile(r"-?\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_WITH_WORDS = re.compile(r"(-?(?:\d+(?:\.\d+)?|\.\d+))((?:\s+[a-zA-Z]{2,}\.?)+)")
# words that are mathematics, not units: `2 pi` is not 2
_MATH_WORDS = frozenset({"pi", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod",
                         "and", "or", "to", "times", "cdot", "over", "infty", "inf", "sinh", "cosh", "tanh"})


def normalize_answer(answer: str, percent: str = "strip") -> str:
    """A canonical string: no spaces, `$`, `\\text{}` wrappers, `\\left`, degrees, thousands separators;
    unit words (two letters or more, after a space) dropped after a plain number; percent per policy
    ("ratio" writes `50%` as `50/100`)."""
    s = answer.strip()
    s = _TEXT_CMD.sub(r" \1", s)
    for old, new in (("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\left", ""), ("\\right", ""),
                     ("^\\circ", ""), ("^{\\circ}", ""), ("\\$", ""), ("$", ""), ("dfrac", "frac"), ("tfrac", "frac")):
        s = s.replace(old, new)
    s = s.strip().rstrip(".").strip()
    is_percent = s.endswith("%") or s.endswith("percent")
    s = s.replace("\\%", "").replace("%", "").strip()
    m = _WITH_WORDS.fullmatch(s)
    if m and not any(w.strip(".").lower() in _MATH_WORDS for w in m.group(2).split()):
        s = m.group(1)
    s = strip_thousands(s.replace(" ", ""))
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


def quick_equivalent(gold: str, pred: str, settings: MathSettings | None = None) -> bool | None:
    """True/False when exact cheap rules decide; None when math-verify must decide. Inputs longer than
    settings.max_answer_chars are not for this function (see `long_equivalent`)."""
    settings = settings or MathSettings()
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
    import math_verify  # noqa: F401  (import once per worker, not per call)


@functools.lru_cache(maxsize=4096)
def _parse(answer: str):
    """math-verify's parse of one answer; memoised in the worker process (parsing is ~95% of a
    symbolic check, and a problem's reference and its frequent answers come back in every batch)."""
    from math_verify import parse

    try:
        return tuple(parse(f"\\boxed{{{answer}}}", parsing_timeout=5))
    except Exception:
        return ()


def _verify(gold_parsed, pred_parsed, settings: MathSettings) -> bool | None:
    from math_verify import verify

    try:
        return bool(verify(list(gold_parsed), list(pred_parsed), float_rounding=settings.float_rounding,
                           numeric_precision=settings.numeric_precision, strict=settings.strict,
                           allow_set_relation_comp=settings.allow_set_relation, timeout_seconds=5,
                           raise_on_error=True))
    except Exception:
        return None


def symbolic_equivalent(gold: str, pred: str, settings: MathSettings | None = None) -> bool | None:
    """math-verify on two extracted answers (runs in a worker). None: undecided (the reference cannot be
    read, or math-verify failed); an answer it cannot read is wrong unless it is the reference's string."""
    settings = settings or MathSettings()
    decided = quick_equivalent(gold, pred, settings)
    if decided is not None:
        return decided
    g = _parse(gold)
    if not g:
        return None
    p = _parse(pred)
    if not p:
        return False
    return _verify(g, p, settings)


def symbolic_equivalent_many(pairs: Sequence[tuple[str, str]], settings: MathSettings) -> list[bool | None]:
    """A worker's share of a batch, in one round trip."""
    return [symbolic_equivalent(g, p, settings) for g, p in pairs]


def group_answers(answers: Sequence[str | None], settings: MathSettings | None = None) -> list[int | None]:
    """Group labels (first-seen order); None stays None. Order-free: the distinct answers are grouped
    in a canonical order, and two answers group when math-verify accepts either direction."""
    settings = settings or MathSettings()
    distinct = sorted({a for a in answers if a is not None},
                      key=lambda a: (normalize_answer(a[: settings.max_answer_chars]), a))
    reps: list[tuple[str, object]] = []
    parsed: dict[str, object] = {}
    label_of: dict[str, int] = {}
    for answer in distinct:
        label = None
        for index, (rep, rep_parsed) in enumerate(reps):
            if max(len(rep), len(answer)) > settings.max_answer_chars:
                decided = long_equivalent(rep, answer)
            else:
                decided = quick_equivalent(rep, answer, settings)
                if decided is None:
                    if answer not in parsed:
                        parsed[answer] = _parse(answer)
                    mine = parsed[answer]
                    decided = bool(rep_parsed and mine and (_verify(rep_parsed, mine, settings)
                                                            or _verify(mine, rep_parsed, settings)))
            if decided:
                label = index
                break
        if label is None:
            label = len(reps)
            if len(answer) <= settings.max_answer_chars and answer not in parsed:
                parsed[answer] = _parse(answer)
            reps.append((answer, parsed.get(answer)))
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

    def __init__(self, workers: int = 2, timeout: float = 10.0, settings: MathSettings | None = None, **options):
        self.settings = settings or MathSettings(**options)
        self.pool = WorkerPool(size=workers, timeout=timeout, initializer="ttscale.graders.math:_init_worker")
        self.undecided = 0
        self.grouping_fallbacks = 0
        self.last_reason: str | None = None  # of the latest undecided check (a result keeps its own)

    # -- equivalence -------------------------------------------------------------------------------
    def equivalent(self, gold: str | None, pred: str | None) -> bool | None:
        """True, False, or None when the check could not be decided (counted in `stats`)."""
        return self.grade_batch([(gold, pred)])[0]

    def grade_batch(self, pairs: Sequence[tuple[str | None, str | None]]) -> list[bool | None]:
        """Equivalence of many (gold, pred) pairs (None: undecided; see `checks` for why)."""
        return [verdict for verdict, _ in self.checks(pairs)]

    def checks(self, pairs: Sequence[tuple[str | None, str | None]]) -> list[tuple[bool | None, str | None]]:
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
            outcomes = self.pool.map(symbolic_equivalent_many,
                                     [([pairs[i] for i in chunk], self.settings) for chunk in chunks],
                                     on_error=lambda exc: exc)
            for chunk, outcome in zip(chunks, outcomes):
                if isinstance(outcome, WorkerError):
                    checked = [self._one(pairs[i]) for i in chunk] if len(chunk) > 1 else [(None, _did_not_run(outcome))]
                else:
                    checked = [(v, None if v is not None else "math-verify could not decide") for v in outcome]
                for i, check in zip(chunk, checked):
                    out[i] = check
        for verdict, reason in out:
            if verdict is None:
                self.undecided += 1
                self.last_reason = reason
        return out

    def _one(self, pair: tuple[str, str]) -> tuple[bool | None, str | None]:
        try:
            verdict = self.pool.call(symbolic_equivalent, pair[0], pair[1], self.settings)
        except WorkerError as exc:
            return None, _did_not_run(exc)
        return verdict, None if verdict is not None else "math-verify could not decide"

    # -- grouping ---------------------------------------------------------------------------------
    def group(self, answers: Sequence[str | None]) -> list[int | None]:
        """Equivalence-group labels, independent of the answers' order. If the symbolic grouping cannot
        run, answers are grouped by normalised strings and the fallback is counted in `stats`."""
        present = [a for a in answers if a is not None]
        if len({normalize_answer(a, self.settings.percent) for a in present}) <= 1:
            return _group_by_normalized(answers, self.settings.percent)
        try:
            return self.pool.call(group_answers, list(answers), self.settings)
        except WorkerError:
            self.grouping_fallbacks += 1
            return _group_by_normalized(answers, self.settings.percent)

    # -- the grader contract shared with CodeGrader -------------------------------------------------
    def extract(self, text: str | None, problem=None, finished: bool = True) -> str | None:
        """The final answer of a completion; `finished=False` (truncated) disables the number fallback."""
        return extract_answer(text, self.settings.fallback, finished)

    async def agroup(self, answers: Sequence[str | None], problem=None) -> list[int | None]:
        return await asyncio.to_thread(self.group, answers)

    async def agrade(self, result, problem) -> None:
        """Mark the chosen answer and every candidate (one check per answer group) against the reference."""
        await asyncio.to_thread(grade_math_result, self, result, problem)

    async def aequivalent(self, gold: str | None, pred: str | None) -> bool | None:
        return await asyncio.to_thread(self.equivalent, gold, pred)

    def stats(self) -> dict[str, int]:
        return {"undecided_checks": self.undecided, "worker_timeouts": self.pool.timeouts,
                "worker_failures": self.pool.failures, "grouping_fallbacks": self.grouping_fallbacks}

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
    checks = dict(zip(answers, grader.checks([(problem.answer, a) for a in answers])))
    result.correct = False if result.answer is None else checks[result.answer][0]
    for candidate in result.candidates:
        candidate.correct = False if candidate.answer is None else checks[candidate.answer][0]
    if result.correct is None:
        result.undecided = checks[result.answer][1]


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
