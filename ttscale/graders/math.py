"""Math answers: extraction from model output, and equivalence that never hangs.

extract_answer finds the final answer in a completion. Equivalence first tries exact cheap rules in
this process (normalised strings, exact rational numbers: `1/2`, `0.5`, `\\frac{1}{2}`, `50\\%`,
`2,125`); everything else goes to math-verify in a worker process whose timeout is enforced from
outside (ttscale.graders.pool), so a pathological expression costs at most `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from fractions import Fraction

from ttscale.graders.pool import WorkerPool

_BOX_COMMANDS = ("\\boxed", "\\fbox", "\\framebox")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_GSM8K = re.compile(r"####\s*([^\n]+)")
_FINAL = re.compile(r"final answer\s*(?:is)?\s*[:：]?\s*([^\n]+)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"the answer is\s*[:：]?\s*([^\n]+)", re.IGNORECASE)
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_NUMBER_WITH_UNIT = re.compile(r"(-?[\d,]*\.?\d+)\s*[a-zA-Z][a-zA-Z .]*")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}")


def _match_braces(text: str, open_at: int) -> int | None:
    """Index of the `}` closing the `{` at open_at, or None when unbalanced."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last balanced \\boxed{...} / \\fbox{...} / \\framebox{...} (or `\\boxed 5`)."""
    starts = sorted(
        (m.start(), cmd) for cmd in _BOX_COMMANDS for m in re.finditer(re.escape(cmd) + r"(?![a-zA-Z])", text)
    )
    for start, cmd in reversed(starts):
        i = start + len(cmd)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _match_braces(text, i)
            if end is not None:
                return text[i + 1 : end].strip()
        elif i > start + len(cmd):  # `\boxed 5`: up to the next space or `$`
            m = re.match(r"[^\s$]+", text[i:])
            if m:
                return m.group(0)
    return None


def _clean_phrase(tail: str) -> str:
    tail = tail.strip()
    boxed = last_boxed(tail)
    if boxed is not None:
        return boxed
    tail = tail.strip().strip("$").strip()
    return _strip_thousands(re.sub(r"[.;]+$", "", tail).strip())


def extract_answer(text: str | None) -> str | None:
    """The final answer in a completion, or None.

    Priority: the last \\boxed{} / \\fbox{} (nested braces), GSM8K's `#### N`, "Final Answer: ...",
    "The answer is ...", and last the last number in the text.
    """
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    for pattern in (_GSM8K, _FINAL, _ANSWER_IS):
        matches = pattern.findall(text)
        if matches:
            answer = _clean_phrase(matches[-1])
            if answer:
                return answer
    numbers = _NUMBER.findall(text)
    if numbers:
        return _strip_thousands(numbers[-1].rstrip(","))
    return None


def _strip_thousands(s: str) -> str:
    return s.replace(",", "") if _THOUSANDS.fullmatch(s) else s


def normalize_answer(answer: str) -> str:
    """A canonical string: no spaces, `$`, `\\text{}` wrappers, `\\left`, degrees, percent, or units
    after a plain number."""
    s = answer.strip()
    s = _TEXT_CMD.sub(r"\1", s)
    for old, new in (("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\left", ""), ("\\right", ""),
                     ("^\\circ", ""), ("^{\\circ}", ""), ("\\%", ""), ("%", ""), ("\\$", ""),
                     ("$", ""), ("dfrac", "frac"), ("tfrac", "frac")):
        s = s.replace(old, new)
    s = s.strip().rstrip(".").strip()
    m = _NUMBER_WITH_UNIT.fullmatch(s)
    if m:
        s = m.group(1)
    s = _strip_thousands(s.replace(" ", ""))
    return s


def as_rational(s: str) -> Fraction | None:
    """An exact rational for plain numbers, decimals, a/b and \\frac{a}{b}; None otherwise."""
    m = _FRAC.fullmatch(s)
    if m:
        s = f"{m.group(1)}/{m.group(2)}"
    if s.startswith("-\\frac"):
        m = _FRAC.fullmatch(s[1:])
        if m:
            s = f"-{m.group(1)}/{m.group(2)}"
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)(/-?\d+)?", s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def quick_equivalent(gold: str, pred: str) -> bool | None:
    """True/False when cheap exact rules decide; None when a symbolic check is needed."""
    a, b = normalize_answer(gold), normalize_answer(pred)
    if a == b:
        return True
    ra, rb = as_rational(a), as_rational(b)
    if ra is not None and rb is not None:
        return ra == rb
    if ra is not None or rb is not None:
        # A number against an expression: only symbolic work can tell (e.g. `\sqrt{4}`).
        return None
    return None


# ---- symbolic work, run inside worker processes -------------------------------------------------

def _init_worker() -> None:
    import math_verify  # noqa: F401  (import once per worker, not per call)


def _parse(answer: str):
    from math_verify import parse

    return parse(f"\\boxed{{{answer}}}", parsing_timeout=5)


def symbolic_equivalent(gold: str, pred: str) -> bool:
    """math-verify on two extracted answers (runs in a worker)."""
    from math_verify import verify

    decided = quick_equivalent(gold, pred)
    if decided is not None:
        return decided
    g, p = _parse(gold), _parse(pred)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=5))


def group_answers(answers: Sequence[str | None]) -> list[int | None]:
    """Group labels: answers that are equivalent share a label (first-seen order); None stays None."""
    from math_verify import verify

    reps: list[tuple[str, object]] = []
    labels: list[int | None] = []
    parsed: dict[str, object] = {}
    for answer in answers:
        if answer is None:
            labels.append(None)
            continue
        label = None
        for index, (rep, rep_parsed) in enumerate(reps):
            decided = quick_equivalent(rep, answer)
            if decided is None:
                if answer not in parsed:
                    parsed[answer] = _parse(answer)
                mine = parsed[answer]
                decided = bool(rep_parsed and mine and verify(rep_parsed, mine, timeout_seconds=5))
            if decided:
                label = index
                break
        if label is None:
            label = len(reps)
            reps.append((answer, parsed.get(answer) or _parse(answer)))
        labels.append(label)
    return labels


def _group_by_normalized(answers: Sequence[str | None]) -> list[int | None]:
    seen: dict[str, int] = {}
    return [None if a is None else seen.setdefault(normalize_answer(a), len(seen)) for a in answers]


class MathGrader:
    """Equivalence checks on a pool of worker processes, each call bounded by `timeout` seconds.

    Use one per run (the runtime makes one) and close it, or use it as a context manager.
    """

    def __init__(self, workers: int = 2, timeout: float = 10.0):
        self.pool = WorkerPool(size=workers, timeout=timeout, initializer=_init_worker)

    def equivalent(self, gold: str | None, pred: str | None) -> bool:
        if gold is None or pred is None:
            return False
        decided = quick_equivalent(gold, pred)
        if decided is not None:
            return decided
        return bool(self.pool.call(symbolic_equivalent, gold, pred, default=False))

    def grade_batch(self, pairs: Sequence[tuple[str | None, str | None]]) -> list[bool]:
        """Equivalence of many (gold, pred) pairs, the symbolic ones in parallel."""
        results: list[bool | None] = []
        pending: list[int] = []
        for i, (gold, pred) in enumerate(pairs):
            if gold is None or pred is None:
                results.append(False)
                continue
            decided = quick_equivalent(gold, pred)
            results.append(decided)
            if decided is None:
                pending.append(i)
        symbolic = self.pool.map(symbolic_equivalent, [pairs[i] for i in pending], default=False)
        for i, value in zip(pending, symbolic):
            results[i] = bool(value)
        return [bool(r) for r in results]

    def group(self, answers: Sequence[str | None]) -> list[int | None]:
        """Equivalence-group labels; falls back to normalised strings if the worker times out."""
        present = [a for a in answers if a is not None]
        if len({normalize_answer(a) for a in present}) <= 1:
            return _group_by_normalized(answers)
        labels = self.pool.call(group_answers, list(answers), default=None)
        return labels if labels is not None else _group_by_normalized(answers)

    def extract(self, text: str | None, problem=None) -> str | None:
        """The final answer of a completion (the grader contract shared with CodeGrader)."""
        return extract_answer(text)

    async def agroup(self, answers: Sequence[str | None], problem=None) -> list[int | None]:
        return await asyncio.to_thread(self.group, answers)

    async def agrade(self, result, problem) -> None:
        """Mark the chosen answer and every candidate (one check per answer group) against the reference."""
        await asyncio.to_thread(grade_math_result, self, result, problem)

    async def aequivalent(self, gold: str | None, pred: str | None) -> bool:
        return await asyncio.to_thread(self.equivalent, gold, pred)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grade_math_result(grader: MathGrader, result, problem) -> None:
    result.reference = problem.answer
    if problem.answer is None:
        return
    result.correct = grader.equivalent(problem.answer, result.answer)
    verdicts: dict[int, bool] = {}
    for candidate in result.candidates:
        if candidate.group is None:
            candidate.correct = False
            continue
        if candidate.group not in verdicts:
            verdicts[candidate.group] = grader.equivalent(problem.answer, candidate.answer)
        candidate.correct = verdicts[candidate.group]


def is_equivalent(gold: str | None, pred: str | None, timeout: float = 10.0) -> bool:
    """Whether two answers are mathematically equivalent (bounded by `timeout` seconds)."""
    if gold is None or pred is None:
        return False
    decided = quick_equivalent(gold, pred)
    if decided is not None:
        return decided
    with MathGrader(workers=1, timeout=timeout) as grader:
        return grader.equivalent(gold, pred)


def grade_batch(pairs: Sequence[tuple[str | None, str | None]], workers: int = 2, timeout: float = 10.0) -> list[bool]:
    """Equivalence of many (gold, pred) pairs in parallel worker processes."""
    with MathGrader(workers=workers, timeout=timeout) as grader:
        return grader.grade_batch(pairs)
