"""Code from a completion: a fenced block, a bare function, or a HumanEval-style continuation of the
prompt. The result is a program that parses (trailing prose is cut at the longest prefix that does)."""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
# where a continuation of a function body ends (the HumanEval paper's stop sequences)
CONTINUATION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def longest_parsable_prefix(code: str) -> str | None:
    """The longest run of whole lines from the start that is valid Python (prose after code is cut)."""
    lines = code.rstrip().splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]).rstrip() + "\n"
        if candidate.strip() and parses(candidate):
            return candidate
    return None


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def fenced_blocks(text: str) -> list[str]:
    """Contents of ``` fences (python or unlabelled); an unclosed last fence runs to the end."""
    return [body for lang, body in _FENCE.findall(text) if lang.lower() in ("", "python", "py", "python3")]


def extract_code(text: str | None, prompt: str = "", entry_point: str | None = None) -> str | None:
    """A runnable program from a completion, or None.

    1. Fenced blocks: the first that defines `entry_point` (else the longest), after `prompt` so the
       prompt's imports and helpers stay defined; a redefinition replaces the prompt's stub.
    2. A bare definition of `entry_point` in the text: the same, without fences.
    3. Otherwise a continuation of `prompt` (the function body), cut at the usual stop sequences.
    """
    if text is None:
        return None
    blocks = fenced_blocks(text)
    code = None
    if blocks:
        defining = [b for b in blocks if entry_point and _defines(b, entry_point)]
        code = defining[0] if defining else max(blocks, key=len)
    elif entry_point and _defines(text, entry_point):
        start = re.search(rf"^(?:(?:from|import)\s|@|(?:async\s+)?def\s+{re.escape(entry_point)})", text, re.MULTILINE)
        code = text[start.start():] if start else text
    if code is not None:
        code = longest_parsable_prefix(code)
        if code is None:
            return None
        return (prompt.rstrip() + "\n\n\n" + code) if prompt and parses(prompt) else code
    if not prompt:
        return longest_parsable_prefix(text)
    body = text
    for stop in CONTINUATION_STOPS:
        cut = body.find(stop)
        if cut != -1:
            body = body[:cut]
    return longest_parsable_prefix(prompt + body)


def normalized(program: str) -> str:
    """A key for grouping programs that differ only in formatting and comments."""
    try:
        return ast.dump(ast.parse(program))
    except (SyntaxError, ValueError):
        return program.strip()


def declared_modules(program: str) -> dict[str, str]:
    """alias -> module of the program's top-level imports, read by a static parse (never by running
    it): the tests' process imports from these only the standard-library modules of its allow-list,
    so a program's own globals never choose what the tests' process (on the host) imports."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return {}
    modules: dict[str, str] = {}
    for node in tree.body[:10_000]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    top = alias.name.split(".", 1)[0]
                    modules[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:  # `from os import path`: a module only if the allow-list names it
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return modules
