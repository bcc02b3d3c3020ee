"""Execution feedback on a program's visible tests, as self-debugging shows it to the model (Chen et al.
2023, "Teaching Large Language Models to Self-Debug": the "unit test" feedback, the failing test and
what the program really did).

One sandbox run per program: the visible tests, plus, for each test of the form `assert EXPR == VALUE`
(or another one comparison) or `assert EXPR`, EXPR again as a probe, so a failed test is shown with the value the program returned
(or the error it raised). A test that could not finish is shown as such; nothing the program printed
is shown (it could say anything).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_SHOWN = 300  # characters of a value or an error in the feedback


def checked_expression(test: str) -> str | None:
    """EXPR of `assert EXPR == VALUE` (any one comparison) / `assert not EXPR` / `assert EXPR` (one
    statement), else None."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    node = tree.body[0].test
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "outputs_match"
            and len(node.args) == 2):  # a stdio test (stdio.py): what the program printed
        node = node.args[0]
    if isinstance(node, ast.Compare) and len(node.ops) == 1:  # `== VALUE`, `< 1e-6`, `in (1, 2)`: the left side
        node = node.left
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        node = node.operand
    try:
        return ast.unparse(node)
    except (ValueError, RecursionError):
        return None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + " ..."


@dataclass
class Outcome:
    test: str
    status: str  # pass | fail | error | timeout
    error: str | None = None
    actual: str | None = None  # repr of EXPR's value, when it gave one

    def describe(self) -> str:
        """The test, then what happened."""
        expression = checked_expression(self.test)
        if self.status == "pass":  # with what it returned, as S* shows a passed test's output
            shown = self.actual is not None and not self.actual.startswith("!") and expression
            happened = f"Passed: {_cut(expression)} returned {_cut(self.actual)}." if shown else "Passed."
        elif self.status == "timeout":
            happened = "Failed: it did not finish in time."
        elif self.actual is not None and not self.actual.startswith("!") and expression:
            happened = f"Failed: {_cut(expression)} returned {_cut(self.actual)}."
        elif self.error and self.error != "AssertionError":
            happened = f"Failed: it raised {_cut(self.error)}."
        elif self.actual is not None and self.actual.startswith("!"):
            happened = f"Failed: it raised {_cut(self.actual[1:])}."
        else:
            happened = "Failed."
        return f"{self.test}\n{happened}"


@dataclass
class Feedback:
    """What a program did on the visible tests: passed (all of them), each test's outcome in order, and
    the run's cost. `undecided`: the run gave no verdict on some test (the program's process died or
    the whole run timed out): counted, never a pass. `reason`: why the program could not be tested
    (it did not load)."""

    passed: bool
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    undecided: bool = False
    reason: str | None = None

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "pass"]

    def share(self, tests: int) -> float:
        """The share of `tests` visible tests passed (S*'s public accuracy)."""
        return sum(o.status == "pass" for o in self.outcomes) / tests if tests else 0.0

    def report(self) -> str:
        """Every test with its outcome (S* lists every public test), or why none could run."""
        if self.reason:
            return f"The code could not be tested: {_cut(self.reason)}."
        return "\n\n".join(f"[Test {i + 1}] {o.describe()}" for i, o in enumerate(self.outcomes))


async def run_visible(grader, program: str | None, problem, tests: Sequence[str]) -> Feedback:
    """Run `tests` (the task's visible tests) on `program` with a probe per checked expression."""
    if program is None:
        return Feedback(False, [Outcome(t, "error") for t in tests], reason="no code was found in the answer")
    expressions = [checked_expression(t) for t in tests]
    probes = list(dict.fromkeys(e for e in expressions if e))
    verdict = await grader.run_cases(program, problem, tests, probes)
    values = dict(zip(probes, verdict.probe_values))
    outcomes = [Outcome(test, o.status, o.error, values.get(e)) for test, o, e in zip(tests, verdict.tests, expressions)]
    undecided = any(o.status == "error" and o.error is None for o in outcomes)
    reason = verdict.reason if verdict.status == "error" and verdict.reason else None
    return Feedback(verdict.passed, outcomes, verdict.seconds, undecided, reason)
