"""Code problems as tests: HumanEval's `check(candidate)` split into one test per assertion, MBPP's
assert lists; which tests are visible (shown in the prompt / used to select) and which grade; and the
inputs of the visible tests, for execution-based voting."""

from __future__ import annotations

import ast
import builtins
import re
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
    # visible tests that do not grade: the examples the task shows (HumanEval's docstring), when they are
    # the visible tests (dataset.visible_tests=docstring); then `visible` is empty
    examples: tuple[str, ...] = ()
    # how a program is run: "" (its module is loaded, the tests call its functions) or "stdio" (its
    # text runs as __main__ on each test's input: stdio.py)
    harness: str = ""

    @property
    def visible_tests(self) -> tuple[str, ...]:
        """The tests a selector may use: the task's shown examples, or the hidden tests at `visible`."""
        return self.examples if self.examples else tuple(self.tests[i] for i in self.visible)

    @property
    def exports(self) -> tuple[str, ...]:
        """The program's names the tests may see: the entry point, and the names the tests and probes
        use that neither the setup nor Python's builtins define (a class of the program that a test
        builds, say). Everything else of the program stays out of the tests' namespace."""
        defined = _defined(self.setup) | set(dir(builtins))
        used: list[str] = [self.entry_point]
        for code in (*self.tests, *self.examples, *self.probes):
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
                "program_setup": self.program_setup, "examples": list(self.examples),
                **({"harness": self.harness} if self.harness else {})}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> CodeTask:
        if "tests" not in meta or "entry_point" not in meta:
            raise ValueError("not a code problem (no tests / entry_point in its metadata): "
                             "is dataset.format humaneval, mbpp or stdio?")
        return cls(meta["entry_point"], meta.get("prompt", ""), meta.get("setup", ""), tuple(meta["tests"]),
                   tuple(meta.get("visible", ())), tuple(meta.get("probes", ())), meta.get("program_setup", ""),
                   tuple(meta.get("examples", ())), str(meta.get("harness", "")))


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


def _calls_any(node: ast.AST, names: Sequence[str]) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names for n in ast.walk(node))


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


def split_statements(statements: Sequence[ast.stmt], asserting: Sequence[str] = ()) -> list[str]:
    """One snippet per statement holding an assertion (or calling one of the `asserting` helpers:
    evalplus's `assertion(candidate(*inp), exp, atol)` loop); other statements join the next snippet
    (so setup lines such as `import math` run before the assertions that need them)."""
    snippets, pending = [], []
    for statement in statements:
        pending.append(ast.unparse(statement))
        if _has_assert(statement) or (asserting and _calls_any(statement, asserting)):
            snippets.append("\n".join(pending))
            pending = []
    if pending and snippets:
        snippets[-1] += "\n" + "\n".join(pending)
    return snippets


def humaneval_task(prompt: str, test: str, entry_point: str, visible: int | str = "docstring") -> CodeTask:
    """HumanEval's test module (HumanEval+'s too: evalplus's layout, a loop of `assertion(...)` calls
    over its inputs, is one test): its `check(candidate)` body becomes one test per assertion statement;
    the rest of the module (METADATA, helpers, imports) is setup, after the prompt's own helpers and
    imports, with `candidate` bound to the entry point. visible: "docstring" (the prompt's examples are
    the visible tests, as the task shows them; none grade) or N (the first N hidden tests)."""
    module = ast.parse(test)
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        raise ValueError("the test code has no `def check(candidate)`")
    argument = check.args.args[0].arg if check.args.args else "candidate"
    rest = [n for n in module.body if n is not check and not _is_check_call(n)]
    helpers = prompt_helpers(prompt, entry_point)
    setup = (helpers + "\n" if helpers else "") + "\n".join(ast.unparse(n) for n in rest) + f"\n{argument} = {entry_point}\n"
    # helpers of the test module that assert (HumanEval+'s `assertion`): a statement calling one is a test
    asserting = [n.name for n in rest if isinstance(n, ast.FunctionDef) and _has_assert(n)]
    tests = split_statements(check.body, asserting)
    if not tests:
        raise ValueError("check(candidate) has no assertions")
    if visible == "docstring":
        examples = docstring_examples(prompt, entry_point)
        probes = [p for e in examples for p in _calls(ast.parse(e), (entry_point,))]
        return CodeTask(entry_point, prompt, setup, tuple(tests), (), tuple(probes), examples=tuple(examples))
    shown = [i for i, t in enumerate(tests) if argument in t][:_count(visible)]
    probes = [p for i in shown for p in _calls(ast.parse(tests[i]), (argument, entry_point))]
    return CodeTask(entry_point, prompt, setup, tuple(tests), tuple(shown), tuple(probes))


def _count(visible: int | str) -> int:
    if isinstance(visible, bool) or not isinstance(visible, int) or visible < 0:
        raise ValueError(f"visible_tests={visible!r}: docstring, or how many of the hidden tests are visible (>= 0)")
    return visible


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
    if visible == "docstring":  # MBPP shows its first test in the prompt: that is its docstring
        visible = 1
    shown = list(range(min(_count(visible), len(tests))))
    probes = [p for i in shown for p in _calls(ast.parse(tests[i]), (entry_point,))]
    imports = "\n".join(str(line) for line in test_imports)
    for line in test_imports:
        ast.parse(str(line))  # a SyntaxError names the row (the loader catches it)
    tests_setup = "\n".join(part for part in (imports, setup or "") if part)
    return CodeTask(entry_point, "", tests_setup, tuple(tests), tuple(shown), tuple(probes), program_setup=setup or "")


# -- tests from text: a docstring's examples, or tests a model wrote --------------------------------------
# Such tests are read as data, never run as written: a test is kept only when it is `entry_point(literal
# arguments)` compared with a literal (or asserted true / false), and it is then written anew from the
# parsed values. Anything else (a name, an expression, a loop) is not a test here: it is counted, and
# the code that would have run is never executed in the tests' process.
ARROWS = ("==>", "=>", "➞", "→", "->", "==", "=", "should return", "returns", "should be", "is")
WORDS = {"true": "True", "false": "False", "none": "None"}  # docstrings write JavaScript-like literals at times


def literal_test(call: str, expected: str | None, entry_point: str) -> str | None:
    """`assert entry_point(args) == expected`, written anew from literal values; None when `call` is not
    a call of the entry point on literals or `expected` is not a literal. expected None: `call` is a
    whole assertion's expression (`f(x) == y`, `f(x)`, `not f(x)`, `f(x) is True`)."""
    try:
        node = ast.parse(call.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        node = None
    if expected is None and (node is None or isinstance(node, ast.Tuple)):  # `cond, "message"`: an assert's form
        try:
            statement = ast.parse("assert " + call.strip()).body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        if len(statement) != 1 or not isinstance(statement[0], ast.Assert):
            return None
        node = statement[0].test  # the message is dropped: only the condition is a test
    if node is None:
        return None
    truth = None  # `assert f(x)` / `assert not f(x)`: a truth test, kept as one
    if expected is None:
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.Is)):
            node, target = node.left, node.comparators[0]
            if not _literal(target):
                return None
            value = ast.literal_eval(target)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            node, truth, value = node.operand, False, None
        else:
            truth, value = True, None
    else:
        value = _expected_value(expected)
        if value is _NOT_LITERAL:
            return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point
            and all(_literal(a) and not isinstance(a, ast.Starred) for a in node.args)
            and all(k.arg is not None and _literal(k.value) for k in node.keywords)):
        return None
    args = [repr(ast.literal_eval(a)) for a in node.args]
    args += [f"{k.arg}={ast.literal_eval(k.value)!r}" for k in node.keywords]
    text = f"{entry_point}({', '.join(args)})"
    if truth is not None:
        return f"assert {text}" if truth else f"assert not {text}"
    if isinstance(value, bool) or value is None:
        return f"assert {text} is {value!r}" if value is None else f"assert {text} == {value!r}"
    return f"assert {text} == {value!r}"


_NOT_LITERAL = object()


def _expected_value(text: str):
    """The literal an example says the call gives: the whole text, or what follows its last '='
    (`19 - 5 - 6 = 8`); `true` / `false` read as Python's. _NOT_LITERAL when there is none."""
    text = text.strip().rstrip(".,;").strip()
    for candidate in (text, text.rpartition("=")[2].strip() if "=" in text else None):
        if not candidate:
            continue
        candidate = WORDS.get(candidate.lower(), candidate)
        try:
            return ast.literal_eval(candidate)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    return _NOT_LITERAL


FOR_FORM = re.compile(r"^for (.+?),?\s+(?:the )?(?:output|result|answer|return value) should be (.+)$", re.I)


def _for_form(line: str, entry_point: str, params: list[str]) -> str | None:
    """`For lst = [1, 2] the output should be 3` (arguments by parameter name, in the signature's order)."""
    found = FOR_FORM.match(line.strip())
    if not found or not params:
        return None
    text = found.group(1)
    starts = []
    for name in params:
        at = re.search(rf"(?:^|[\s,]){re.escape(name)}\s*=", text)
        if at is None:
            return None
        starts.append((at.start(), at.end()))
    if [a for a, _ in starts] != sorted(a for a, _ in starts):
        return None
    values = []
    for i, (_, end) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        values.append(text[end:stop].strip().rstrip(","))
    return literal_test(f"{entry_point}({', '.join(values)})", found.group(2), entry_point)


def _call_at(line: str, start: int) -> int | None:
    """The end of the call whose name starts at `start` (balanced parentheses, strings skipped)."""
    depth, quote, i = 0, None, line.find("(", start)
    if i < 0:
        return None
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def docstring_examples(prompt: str, entry_point: str) -> list[str]:
    """The examples a HumanEval prompt's docstring gives, as tests (as CodeT, Reflexion and AlphaCode
    use a task's shown examples): doctest form (`>>> f(x)` then the value on the next lines) and inline
    forms (`f(x) ==> y`, `f(x) == y`, `f(x) ➞ y`, `f(x) -> y`, `f(x) should return y`). Only literal
    examples become tests (literal_test); in order, without repeats."""
    try:
        module = ast.parse(prompt)
    except SyntaxError:
        return []
    function = next((n for n in ast.walk(module) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and n.name == entry_point), None)
    lines = (ast.get_docstring(function) or "").splitlines() if function else []
    params = [a.arg for a in function.args.args] if function else []
    tests: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith(">>>"):
            j, expected = i + 1, []
            while j < len(lines) and lines[j].strip() and not lines[j].strip().startswith(">>>"):
                expected.append(lines[j].strip())
                j += 1
            if expected:
                test = literal_test(line[3:], " ".join(expected), entry_point)
            else:  # no output: doctest's None for a call; `>>> f(x) == y` is an assertion's expression
                test = literal_test(line[3:], "None", entry_point) or literal_test(line[3:], None, entry_point)
            if test and test not in tests:
                tests.append(test)
            i = j
            continue
        test = _for_form(line, entry_point, params)
        if test and test not in tests:
            tests.append(test)
        at = line.find(entry_point + "(")
        while at >= 0:
            end = _call_at(line, at)
            if end is None:
                break
            rest = line[end:].strip()
            for arrow in ARROWS:
                if rest.startswith(arrow):
                    test = literal_test(line[at:end], rest[len(arrow):], entry_point)
                    if test and test not in tests:
                        tests.append(test)
                    break
            at = line.find(entry_point + "(", end)
        i += 1
    return tests
