"""Load problems: a shipped fixture, a local JSONL file, or a Hugging Face dataset by name."""

from __future__ import annotations

import gzip
import importlib.resources
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttscale.types import Problem

ANSWER_FORMATS = ("raw", "gsm8k", "boxed")
FORMATS = ("qa", "humaneval", "mbpp", "stdio")  # how a row becomes a problem


class DatasetError(ValueError):
    """A dataset cannot be found, or one of its rows is malformed (the message names the row)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where problems come from and which fields hold what.

    source: "fixture:NAME" (shipped in ttscale/data/fixtures), a local .jsonl path, or an HF name.
    id_key: a field holding a unique id; without one, ids are `{id_prefix}-{row index}`.
    answer_format: how the reference is stored: raw, gsm8k (`... #### N`), boxed (last \\boxed{}).
    format: "qa" (a question and a reference answer), or a code benchmark's row layout: "humaneval"
    (task_id, prompt, entry_point, test), "mbpp" (task_id, text, test_list, test_setup_code) or "stdio"
    (programs reading standard input: CodeContests', LiveCodeBench's or ttscale's layout, stdio_rows.py).
    visible_tests: code problems: the tests a selector may use: "docstring" (HumanEval: the examples its
    prompt shows, parsed into tests that do not grade; MBPP: its first test, shown in the prompt) or N
    (the first N hidden tests; shown in MBPP's prompt).
    """

    source: str
    split: str = "test"
    subset: str | None = None
    question_key: str = "question"
    answer_key: str = "answer"
    id_key: str | None = None
    id_prefix: str = "row"
    answer_format: str = "raw"
    offset: int = 0
    limit: int | None = None
    format: str = "qa"
    visible_tests: int | str = "docstring"


def gold_answer(value: Any, answer_format: str) -> str:
    """The reference answer from a dataset field, in the given format."""
    text = str(value)
    if answer_format == "gsm8k":
        if "####" not in text:
            raise ValueError("no '#### N' marker (a GSM8K answer ends with one; for answers given as they are, set dataset.answer_format=raw)")
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    if answer_format == "boxed":
        from ttscale.graders.math import last_boxed

        boxed = last_boxed(text)
        if boxed is None:
            raise ValueError("no \\boxed{} answer")
        return boxed
    return text.strip()


def _rows_from_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _rows_from_hub(spec: DatasetSpec) -> Iterable[tuple[str, Any]]:
    import datasets

    try:
        data = datasets.load_dataset(spec.source, spec.subset, split=spec.split)
    except Exception as exc:
        raise DatasetError(f"cannot load dataset {spec.source!r} (split {spec.split!r}): {exc}") from exc
    for index, row in enumerate(data):
        yield f"{spec.source}[{spec.split}][{index}]", row


def _rows(spec: DatasetSpec) -> Iterable[tuple[str, Any]]:
    if spec.source.startswith("fixture:"):
        name = spec.source.removeprefix("fixture:")
        resource = importlib.resources.files("ttscale.data") / "fixtures" / f"{name}.jsonl"
        if not resource.is_file():
            raise DatasetError(f"no shipped fixture named {name!r}")
        with importlib.resources.as_file(resource) as path:
            yield from _rows_from_jsonl(path)
        return
    if spec.source.startswith("package:"):  # data shipped inside an installed Python package
        package, _, inner = spec.source.removeprefix("package:").partition("/")
        try:
            resource = importlib.resources.files(package) / inner
        except ModuleNotFoundError:
            raise DatasetError(f"dataset source {spec.source!r}: the package {package!r} is not installed") from None
        if not resource.is_file():
            raise DatasetError(f"dataset source {spec.source!r}: no file {inner!r} in {package}")
        with importlib.resources.as_file(resource) as path:
            yield from _rows_from_jsonl(path)
        return
    path = Path(spec.source).expanduser()
    if path.suffixes[-2:] == [".jsonl", ".gz"] or path.suffix in (".jsonl", ".json") or path.exists():
        if not path.is_file():
            raise DatasetError(f"dataset file {spec.source!r} does not exist")
        yield from _rows_from_jsonl(path)
        return
    yield from _rows_from_hub(spec)


def _stdio_problem(where: str, row: Mapping[str, Any], spec: DatasetSpec) -> Problem:
    from ttscale.data.stdio_rows import stdio_fields
    from ttscale.graders.code.stdio import stdio_task

    try:
        ident, question, examples, tests = stdio_fields(row)
        task = stdio_task(tests, examples, spec.visible_tests)
    except ValueError as exc:
        raise DatasetError(f"{where}: stdio row cannot be turned into tests: {exc}") from None
    return Problem(id=ident, question=question, answer=None, metadata=task.to_metadata())


def _code_problem(where: str, index: int, row: Mapping[str, Any], spec: DatasetSpec) -> Problem:
    from ttscale.graders.code.tasks import humaneval_task, mbpp_task

    if spec.format == "stdio":
        return _stdio_problem(where, row, spec)
    needed = {"humaneval": ("task_id", "prompt", "entry_point", "test"), "mbpp": ("task_id", "test_list")}[spec.format]
    for key in needed:
        if key not in row:
            raise DatasetError(f"{where}: missing field {key!r} for format={spec.format} (fields: {sorted(row)})")
    try:
        if spec.format == "humaneval":
            task = humaneval_task(row["prompt"], row["test"], row["entry_point"], spec.visible_tests)
            question = row["prompt"]
            answer = row["prompt"] + row["canonical_solution"] if row.get("canonical_solution") else None
        else:
            text = row.get("text") or row.get("prompt")
            if not text:
                raise ValueError("no problem statement ('text' or 'prompt')")
            task = mbpp_task(list(row["test_list"]), row.get("test_setup_code") or "", row.get("entry_point"),
                             spec.visible_tests, list(row.get("test_imports") or ()))
            shown = "\n".join(task.tests[i] for i in task.visible)
            question = f"{text}\nYour code should pass these tests:\n\n{shown}" if shown else text
            answer = row.get("code")
    except (SyntaxError, ValueError) as exc:
        raise DatasetError(f"{where}: {spec.format} row cannot be turned into tests: {exc}") from None
    return Problem(id=str(row["task_id"]), question=question, answer=answer, metadata=task.to_metadata())


def _problem(where: str, index: int, row: Any, spec: DatasetSpec) -> Problem:
    if not isinstance(row, Mapping):
        raise DatasetError(f"{where}: expected an object, got {type(row).__name__}")
    if spec.format != "qa":
        return _code_problem(where, index, row, spec)
    for key in (spec.question_key, spec.answer_key) + ((spec.id_key,) if spec.id_key else ()):
        if key not in row:
            raise DatasetError(f"{where}: missing field {key!r} (fields: {sorted(row)})")
    try:
        answer = gold_answer(row[spec.answer_key], spec.answer_format)
    except ValueError as exc:
        raise DatasetError(f"{where}: field {spec.answer_key!r}: {exc}") from None
    pid = str(row[spec.id_key]) if spec.id_key else f"{spec.id_prefix}-{index}"
    meta = {k: v for k, v in row.items() if k not in (spec.question_key, spec.answer_key)}
    return Problem(id=pid, question=str(row[spec.question_key]), answer=answer, metadata=meta)


def load_problems(spec: DatasetSpec) -> list[Problem]:
    """Problems `offset .. offset+limit` of a dataset. A malformed row raises DatasetError naming it."""
    if spec.format not in FORMATS:
        raise DatasetError(f"format={spec.format!r}; choose one of: {', '.join(FORMATS)}")
    if spec.answer_format not in ANSWER_FORMATS:
        raise DatasetError(f"answer_format={spec.answer_format!r}; choose one of: {', '.join(ANSWER_FORMATS)}")
    problems = []
    for index, (where, row) in enumerate(_rows(spec)):
        if index < spec.offset:
            continue
        if spec.limit is not None and len(problems) >= spec.limit:
            break
        problems.append(_problem(where, index, row, spec))
    if not problems:
        where = spec.source or spec.name
        raise DatasetError(f"dataset {where!r} selects no problem (offset={spec.offset}, limit={spec.limit}): "
                           + ("the offset is past the end" if spec.offset else "it has no rows"))
    return problems
