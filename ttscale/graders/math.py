"""Math answers: extraction from model output, and equivalence that never hangs and never guesses.

A verdict is True, False, or None: *undecided* — the check could not run (its worker timed out, died
or could not start; an answer was too long to check; the reference could not be read). Undecided
verdicts are counted and reported, never read as "not equal".

Extraction lives in ttscale.graders.math_answers, the cheap rules in math_rules, math-verify's side in
math_symbolic (their public names re-exported here). Equivalence first tries exact cheap rules in this process (normalised strings, exact rationals: `1/2`, `\\frac{1}{2}`,
`2,125`, `025`); everything else goes to math-verify in worker processes whose timeout is enforced from
outside (ttscale.graders.pool). Numbers written as decimal approximations (`0.0833333`, `1.41421356`)
are always compared by math-verify, so one numeric-tolerance policy (its `float_rounding`) applies to
rationals and irrationals alike.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import asdict

from ttscale.graders.math_answers import FALLBACKS, extract_answer
from ttscale.graders.math_text import clean_text, last_boxed, quick_extract, strip_thousands
from ttscale.graders.math_grouping import fingerprint_many, group_distinct, verify_many
from ttscale.graders.math_rules import (PERCENT_POLICIES, MathSettings, as_rational, long_equivalent, normalize_answer,
                                        quick_equivalent)
from ttscale.graders.math_symbolic import (extract_many, symbolic_check, symbolic_checks_many, symbolic_equivalent,
                                           symbolic_equivalent_many, too_costly)
from ttscale.graders.pool import WorkerError, WorkerPool

__all__ = ["FALLBACKS", "PERCENT_POLICIES", "MathGrader", "MathSettings", "as_rational", "extract_answer", "grade_batch",
           "grade_math_result", "group_answers", "is_equivalent", "last_boxed", "long_equivalent", "normalize_answer",
           "quick_equivalent", "quick_extract", "reference_answer", "strip_thousands", "symbolic_check",
           "symbolic_equivalent", "symbolic_equivalent_many", "too_costly"]


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
        self.pool = WorkerPool(size=workers, timeout=timeout, initializer="ttscale.graders.math_symbolic:_init_worker")
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
