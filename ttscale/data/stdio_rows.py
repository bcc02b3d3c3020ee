"""Rows of standard input / output problems (dataset.format=stdio) in the layouts they come in:

- ttscale's own: `question`, `tests` and `examples` as lists of {"input", "output"}, an `id`;
- CodeContests (deepmind/code_contests): `name`, `description`, `public_tests` and `private_tests` as
  {"input": [...], "output": [...]} (its `generated_tests` are not used);
- LiveCodeBench (livecodebench/code_generation_lite): `question_id`, `question_content`,
  `public_test_cases` (JSON text) and `private_test_cases` (JSON text, or base64 of zlib of a pickled
  JSON text: read by an unpickler that refuses every class, so a row cannot run code). Its functional
  (LeetCode-style) problems are refused, naming the row.

The examples the statement shows are the visible tests; the grade uses every test, the examples
included (LiveCodeBench grades on public and private tests alike).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from collections.abc import Mapping
from typing import Any

QUESTION_KEYS = ("question", "description", "question_content")
ID_KEYS = ("id", "task_id", "question_id", "name")
EXAMPLE_KEYS = ("examples", "public_tests", "public_test_cases")
TEST_KEYS = ("tests", "private_tests", "private_test_cases")


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"a pickled {module}.{name}: only plain data is read")


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        raw = zlib.decompress(base64.b64decode(text.encode(), validate=True))
        value = _DataOnly(io.BytesIO(raw)).load()
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"tests that are neither JSON nor LiveCodeBench's packed form ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    return json.loads(value) if isinstance(value, str) else value


def io_pairs(value: Any, field: str) -> list[tuple[str, str]]:
    """(input, expected output) pairs from any of the layouts above."""
    if isinstance(value, str):
        value = _decoded(value) if value.strip() else []
    if isinstance(value, Mapping) and "input" in value and "output" in value:
        inputs, outputs = list(value["input"]), list(value["output"])
        if len(inputs) != len(outputs):
            raise ValueError(f"{field}: {len(inputs)} inputs and {len(outputs)} outputs")
        return [(str(i), str(o)) for i, o in zip(inputs, outputs)]
    if isinstance(value, list):
        pairs = []
        for k, case in enumerate(value):
            if not isinstance(case, Mapping) or "input" not in case or "output" not in case:
                raise ValueError(f"{field}[{k}] is not an object with input and output")
            if case.get("testtype", "stdin") != "stdin":
                raise ValueError(f"{field}[{k}] is a {case['testtype']!r} test: format=stdio runs programs on "
                                 "standard input only (filter such rows out)")
            pairs.append((str(case["input"]), str(case["output"])))
        return pairs
    raise ValueError(f"{field}: expected a list of {{input, output}} or {{input: [...], output: [...]}}")


def stdio_fields(row: Mapping[str, Any]) -> tuple[str, str, list[tuple[str, str]], list[tuple[str, str]]]:
    """id, statement, examples, graded tests (the examples first, then the hidden ones)."""
    question = next((str(row[k]) for k in QUESTION_KEYS if row.get(k)), None)
    if question is None:
        raise ValueError(f"no problem statement (one of: {', '.join(QUESTION_KEYS)})")
    ident = next((str(row[k]) for k in ID_KEYS if row.get(k) not in (None, "")), None)
    if ident is None:
        raise ValueError(f"no id (one of: {', '.join(ID_KEYS)})")
    examples = next((io_pairs(row[k], k) for k in EXAMPLE_KEYS if k in row), [])
    hidden = next((io_pairs(row[k], k) for k in TEST_KEYS if k in row), [])
    tests = list(dict.fromkeys(examples + hidden))
    if not tests:
        raise ValueError(f"no tests (fields: {', '.join(EXAMPLE_KEYS + TEST_KEYS)})")
    return ident, question, examples, tests
