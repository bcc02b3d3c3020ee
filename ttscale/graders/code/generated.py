"""Tests a model writes for a code problem, as CodeT asks for them (Chen et al. 2022, microsoft/CodeT):
the function's signature and docstring (its examples left out, as the authors' prompts leave them out),
a `pass` body, then `# check the correctness of NAME` and `assert `; the model continues, and each of
its `assert` statements that calls the function is a test.

What the model writes is untrusted code, so it is never run as written: a test is kept only when it
compares a call of the function on literal arguments with a literal (tasks.literal_test), and is then
written anew from the parsed values. The rest is counted (`dropped`), never run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ttscale.graders.code.tasks import CodeTask, literal_test

# the authors' stop tokens for generated code and tests (CodeT/src/postprocess.py)
STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
EXAMPLE_MARKERS = (">>>", "example", "for example", "e.g.", "for instance")


def prompt_for_tests(task: CodeTask, show_examples: bool = False) -> str:
    """CodeT's prompt for test cases: the prompt with the function's body replaced by `pass` (and its
    docstring's examples left out unless `show_examples`), then the request for asserts."""
    prompt = task.prompt if show_examples else without_examples(task.prompt, task.entry_point)
    return f"{prompt.rstrip()}\n    pass\n\n# check the correctness of {task.entry_point}\nassert "


def without_examples(prompt: str, entry_point: str) -> str:
    """The prompt with the entry point's docstring cut at its first example (a line that starts with
    `>>>` or "Example", or that calls the function): the description stays, the answers go."""
    try:
        module = ast.parse(prompt)
    except SyntaxError:
        return prompt
    function = next((n for n in ast.walk(module) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and n.name == entry_point), None)
    if function is None or not function.body or not isinstance(function.body[0], ast.Expr):
        return prompt
    doc = function.body[0]
    lines = prompt.splitlines(keepends=True)
    start, end = doc.lineno - 1, doc.end_lineno  # the docstring's lines
    body = lines[start:end]
    cut = None
    for i, line in enumerate(body[1:], 1):
        text = line.strip().lower()
        if text.startswith(EXAMPLE_MARKERS) or f"{entry_point.lower()}(" in text:
            cut = i
            break
    if cut is None:
        return prompt
    indent = body[0][: len(body[0]) - len(body[0].lstrip())]
    quote = '"""' if '"""' in body[0] else "'''"
    kept = body[:cut]
    if quote in "".join(kept)[len(indent) + 3:]:  # a one-line docstring: nothing to cut
        return prompt
    return "".join(lines[:start] + kept + [f"{indent}{quote}\n"] + lines[end:])


@dataclass
class GeneratedTests:
    """The tests read from a problem's test samples: `tests` in order with their counts (how many
    samples wrote each), and how many asserts were dropped (not a literal call of the function)."""

    counts: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    samples: int = 0

    @property
    def tests(self) -> list[str]:
        return list(self.counts)

    def add(self, text: str, entry_point: str, limit: int) -> None:
        """One sample's asserts (the continuation of `assert `): the first `limit` kept ones count."""
        self.samples += 1
        kept = 0
        for part in f"assert {text}".split("assert "):
            part = _truncate(part)
            if not part or entry_point not in part:
                continue
            test = literal_test(part, None, entry_point)
            if test is None:
                self.dropped += 1
                continue
            if kept < limit:
                self.counts[test] = self.counts.get(test, 0) + 1
                kept += 1


def _truncate(part: str) -> str:
    for stop in STOP:
        part = part.split(stop)[0]
    return part.strip()


def call_of(test: str) -> str | None:
    """The call a generated test makes (`f(1, 2)` of `assert f(1, 2) == 3`): an input to run programs on."""
    try:
        node = ast.parse(test).body[0]
    except (SyntaxError, IndexError):
        return None
    if not isinstance(node, ast.Assert):
        return None
    test = node.test
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test = test.operand
    if isinstance(test, ast.Compare):
        test = test.left
    return ast.unparse(test) if isinstance(test, ast.Call) else None
