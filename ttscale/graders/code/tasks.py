"""Code problems as tests: HumanEval's `check(candidate)` split into one test per assertion, MBPP's
assert lists; which tests are visible (shown in the prompt / used to select) and which grade; and the
inputs of the visible tests, for execution-based voting."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CodeTask:
    """prompt: code the program starts from (HumanEval's signature and docstring; "" for MBPP).
    setup: test-side code run after the program. tests: one snippet per test, run in order in one
    namespace. visible: indices of the tests a selector may use; all tests grade."""

    entry_point: str
    prompt: str = ""
    setup: str = ""
    tests: tuple[str, ...] = ()
    visible: tuple[int, ...] = ()
    probes: tuple[str, ...] = field(default=())  # expressions calling the function on visible inputs
    # code run in the program's process after the program (MBPP's test_setup_code defines names the
    # reference solutions use, e.g. `VOWELS`); `setup` runs in the tests' process
    program_setup: str = ""

    @property
    def exports(self) -> tuple[str, ...]:
        """The program's names the tests may see: the entry point, and the names the tests and probes
        use that neither the setup nor Python's builtins define (a class of the program that a test
        builds, say). Everything else of the program stays out of the tests' namespace."""
        defined = _defined(self.setup) | set(dir(builtins))
        used: list[str] = [self.entry_point]
        for code in (*self.tests, *self.probes):
            try:
                tree = ast.parse(code)
            except SyntaxError:
                continue
            local = _defined_in(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined
                        and node.id not in local and node.id not in used):
                    used.append(node.id)
        return tuple(used)

    def to_metadata(self) -> dict[str, Any]:
        return {"entry_point": self.entry_point, "prompt": self.prompt, "setup": self.setup,
                "tests": list(self.tests), "visible": list(self.visible), "probes": list(self.probes),
                "program_setup": self.program_setup}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> CodeTask:
        if "tests" not in meta or "entry_point" not in meta:
            raise ValueError("not a code problem (no tests / entry_point in its metadata): "
                             "is dataset.format humaneval or mbpp?")
        return cls(meta["entry_point"], meta.get("prompt", ""), meta.get("setup", ""), tuple(meta["tests"]),
                   tuple(meta.get("visible", ())), tuple(meta.get("probes", ())), meta.get("program_setup", ""))


def _defined_in(tree: ast.AST) -> set[str]:
    """Names a piece of code binds itself (assignments, imports, defs, loop and comprehension targets)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _defined(code: str) -> set[str]:
    try:
        return _defined_in(ast.parse(code))
    except SyntaxError:
        return set()


def prompt_helpers(prompt: str, entry_point: str) -> str:
    """The prompt's own code besides the function to complete: its imports and helper functions
    (HumanEval/32's `poly`, /38's `encode_cyclic`). Trusted task text, so the tests run these
    definitions, never the program's copies."""
    try:
        module = ast.parse(prompt)
    except SyntaxError:
        return ""
    keep = [n for n in module.body if not (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                                           and n.name == entry_point)]
    return "\n".join(ast.unparse(n) for n in keep)


def _has_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _calls(node: ast.AST, names: Sequence[str]) -> list[str]:
    """Calls of the function with literal arguments only (loop variables cannot be evaluated alone)."""
    calls = []
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in names
                and all(_literal(a) for a in sub.args) and all(_literal(k.value) for k in sub.keywords)):
            text = ast.unparse(sub)
            if text not in calls:
                calls.append(text)
    return calls


def split_statements(statements: Sequence[ast.stmt]) -> list[str]:
    """One snippet per statement holding an assertion; other statements join the next snippet (so
    setup lines such as `import math` run before the assertions that need them)."""
    snippets, pending = [], []
    for statement in statements:
        pending.append(ast.unparse(statement))
        if _has_assert(statement):
            snippets.append("\n".join(pending))
            pending = []
    if pending and snippets:
        snippets[-1] += "\n" + "\n".join(pending)
    return snippets


def humaneval_task(prompt: str, test: str, entry_point: str, visible: int = 1) -> CodeTask:
    """HumanEval's test module: its `check(candidate)` body becomes one test per assertion statement;
    the rest of the module (METADATA, helpers, imports) is setup, after the prompt's own helpers and
    imports, with `candidate` bound to the entry point."""
    module = ast.parse(test)
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        raise ValueError("the test code has no `def check(candidate)`")
    argument = check.args.args[0].arg if check.args.args else "candidate"
    rest = [n for n in module.body if n is not check and not _is_check_call(n)]
    helpers = prompt_helpers(prompt, entry_point)
    setup = (helpers + "\n" if helpers else "") + "\n".join(ast.unparse(n) for n in rest) + f"\n{argument} = {entry_point}\n"
    tests = split_statements(check.body)
    if not tests:
        raise ValueError("check(candidate) has no assertions")
    shown = [i for i, t in enumerate(tests) if argument in t][:visible]
    probes = [p for i in shown for p in _calls(ast.parse(tests[i]), (argument, entry_point))]
    return CodeTask(entry_point, prompt, setup, tuple(tests), tuple(shown), tuple(probes))


def _is_check_call(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "check")


def mbpp_task(tests: Sequence[str], setup: str = "", entry_point: str | None = None, visible: int = 1,
              test_imports: Sequence[str] = ()) -> CodeTask:
    """MBPP: each `assert` string is one test; the function name comes from the first test.
    test_imports (MBPP sanitized's, e.g. `import math`) run in the tests' process before the setup;
    the setup (test_setup_code) runs in both processes, since reference solutions use its names."""
    if not tests:
        raise ValueError("no tests")
    if entry_point is None:
        called = [n.func.id for n in ast.walk(ast.parse(tests[0])) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Name) and not hasattr(builtins, n.func.id)]
        if not called:
            raise ValueError(f"cannot tell the function under test from {tests[0]!r}")
        entry_point = called[0]
    shown = list(range(min(visible, len(tests))))
    probes = [p for i in shown for p in _calls(ast.parse(tests[i]), (entry_point,))]
    imports = "\n".join(str(line) for line in test_imports)
    for line in test_imports:
        ast.parse(str(line))  # a SyntaxError names the row (the loader catches it)
    tests_setup = "\n".join(part for part in (imports, setup or "") if part)
    return CodeTask(entry_point, "", tests_setup, tuple(tests), tuple(shown), tuple(probes), program_setup=setup or "")
