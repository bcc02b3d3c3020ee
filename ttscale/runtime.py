"""Run a strategy over many problems at once: bounded concurrency, seeding, progress, resumable
JSONL results, per-problem failure isolation, grading and usage accounting. A run's rows, parts and
summary are written and read by ttscale.results."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.backends.base import AFFINITY, Backend
from ttscale.graders.math import MathGrader
from ttscale.provenance import question_hash
from ttscale.results import RunResult, close_part, load_results, open_part, run_wall_seconds, summarize, unsolved
from ttscale.strategies.context import Context
from ttscale.strategies.strategy import Strategy
from ttscale.strategies.trace import Trace
from ttscale.tracing.recorder import TraceWriter
from ttscale.types import Problem, Result


log = logging.getLogger(__name__)


async def arun(
    strategy: Strategy,
    problems: Sequence[Problem],
    backend: Backend,
    *,
    seed: int = 0,
    concurrency: int = 64,
    output: str | Path | None = None,
    grader: MathGrader | Any | None = None,
    progress: bool = True,
    retry_errors: bool = True,
    trace: str | Path | None = None,
) -> RunResult:
    """Solve every problem concurrently (at most `concurrency` at once) and grade the answers.

    With `output`, each finished problem is appended to that JSONL file at once; problems already in
    it are skipped, so a killed run resumes where it stopped. A problem that raises is recorded with
    its error (and left ungraded: an error is not a wrong answer) and the run goes on; the next run
    into the same file solves it again (`retry_errors=False`: only those that failed because no server
    could answer, BackendUnavailable). The run's wall time adds up over its parts: each part's is kept
    in `<output>.parts.jsonl`. With `trace` (a path: the run's trace.jsonl.gz), each problem's search is
    recorded there as it finishes (ttscale/strategies/trace.py, ttscale/tracing).
    """
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"problem ids must be unique; repeated: {dupes}")
    out_path = Path(output) if output is not None else None
    done = load_results(out_path) if out_path else {}
    todo = unsolved(problems, done, retry_errors)
    if todo and strategy is None:
        raise ValueError("strategy=None: only a run whose every problem is already in its output (a finished run "
                         "read again) needs no strategy")
    own_grader = grader is None
    grader = grader or MathGrader()
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency={concurrency!r}: the problems in flight at once, an integer >= 1")
    limit = asyncio.Semaphore(concurrency)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc=getattr(strategy, "name", "done"),
                   unit="problem")
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(out_path, "a", encoding="utf-8") if out_path else None
    tracer = TraceWriter(trace) if trace is not None else None
    part = open_part(out_path, list(done.values())) if out_path else 0
    started = time.perf_counter()

    async def solve_one(problem: Problem) -> Result:
        async with limit:
            AFFINITY.set(problem.id)  # this task's backend calls prefer one server (backends/base.py)
            ctx = Context(problem=problem, backend=backend, grader=grader, run_seed=seed,
                          trace=Trace() if tracer else None)
            t0 = time.perf_counter()
            try:
                result = await strategy.solve(problem, ctx)
            except Exception as exc:  # isolate: record and go on
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                result = Result(problem_id=problem.id, answer=None, usage=ctx.usage, error=tb,
                                error_type=type(exc).__name__)
            result.usage.wall_seconds = time.perf_counter() - t0
            if ctx.first_answer_seconds is not None:  # a streamed sample finished: time to the first answer
                result.info.setdefault("first_answer_seconds", ctx.first_answer_seconds)
            earlier = done.get(problem.id)
            if earlier is not None and earlier.error is not None:  # solved again: what the failed tries cost
                result.info["earlier_attempts"] = [*earlier.info.get("earlier_attempts", []),
                                                   {"error": earlier.error, "usage": earlier.usage.to_dict()}]
            # what was asked, as lm-eval's logged samples keep it: the question's hash, the prompt sent
            result.info.setdefault("question_sha256", question_hash(problem.question))
            result.info.setdefault("prompt", ctx.prompt)
            if result.error is None:  # an errored problem is not graded (not a wrong answer: counted apart)
                try:
                    await grader.agrade(result, problem)
                except Exception as exc:  # a grading failure is recorded like a strategy failure
                    result.error = f"grading failed: {type(exc).__name__}: {exc}"
                    result.correct = None
            else:
                result.reference = problem.answer
            result.info["finished_at"] = round(time.time(), 3)  # a killed part's length is read from these
            if handle:
                handle.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
                handle.flush()
            if tracer:
                _write_trace(tracer, ctx, result, strategy.name)
            if bar:
                bar.update(1)
            return result

    async def extend_one(problem: Problem, first: Result, extra: int) -> Result:
        async with limit:
            AFFINITY.set(problem.id)  # this task's backend calls prefer one server (backends/base.py)
            ctx = Context(problem=problem, backend=backend, grader=grader, run_seed=seed,
                          trace=Trace() if tracer else None)
            t0 = time.perf_counter()
            try:
                result = await strategy.extend(problem, ctx, first, extra)
            except Exception as exc:  # the first pass stands, with the failure recorded
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                first.info["second_pass_error"] = tb
                return first
            result.usage.wall_seconds = first.usage.wall_seconds + time.perf_counter() - t0
            try:
                await grader.agrade(result, problem)
            except Exception as exc:
                result.error = result.error or f"grading failed: {type(exc).__name__}: {exc}"
            if handle:  # a later line for the same problem supersedes the first pass's (load_results)
                handle.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
                handle.flush()
            if tracer:  # the second pass's search, as a later line (the first pass's line stays)
                _write_trace(tracer, ctx, result, strategy.name, second_pass=True)
            return result

    try:
        fresh = await asyncio.gather(*(solve_one(p) for p in todo))
        allocate = getattr(getattr(strategy, "search", None), "allocate", None)
        if callable(allocate):  # a search that shares the budget across problems: its second pass
            by_id = {**done, **{r.problem_id: r for r in fresh}}
            extra = allocate([by_id[p.id] for p in problems])
            second = [(p, extra[p.id]) for p in problems
                      if extra.get(p.id, 0) > 0 and "second_pass" not in by_id[p.id].info]
            extended = await asyncio.gather(*(extend_one(p, by_id[p.id], e) for p, e in second))
            again = {r.problem_id for r in extended}
            fresh = [r for r in fresh if r.problem_id not in again] + list(extended)
            done = {k: v for k, v in done.items() if k not in again}
    finally:
        if handle:
            handle.close()
        if tracer:
            tracer.close()
        if bar:
            bar.close()
        if own_grader:
            grader.close()
    wall = time.perf_counter() - started
    by_id = {**done, **{r.problem_id: r for r in fresh}}
    results = [by_id[p.id] for p in problems]
    total = wall
    if out_path:  # the run's wall time is the sum of its parts (a resume adds its own, never replaces)
        close_part(out_path, part, wall, len(fresh))
        total = run_wall_seconds(out_path) or wall
    summary = summarize(results, total, fresh, part_seconds=wall)
    summary["resumed"] = len(problems) - len(todo)
    summary["retried"] = sum(1 for p in todo if p.id in done)
    summary["grader"] = grader.stats()  # undecided checks, worker timeouts, sandbox mode: part of the contract
    return RunResult(results=results, summary=summary)


def _write_trace(tracer: TraceWriter, ctx: Context, result: Result, method: str, **extra: Any) -> None:
    """The problem's trace line; a failure to write it is a warning, never the run's end (the results
    are already kept)."""
    try:
        tracer.write({**ctx.trace.to_dict(result, method, run_seed=ctx.run_seed), **extra})
    except Exception as exc:  # e.g. a full disk
        log.warning("trace of %s not written: %s: %s", result.problem_id, type(exc).__name__, exc)


def run(strategy: Strategy, problems: Sequence[Problem], backend: Backend, **kwargs: Any) -> RunResult:
    """Synchronous `arun`. Works inside a running event loop too (a notebook): it then runs in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(strategy, problems, backend, **kwargs))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, arun(strategy, problems, backend, **kwargs)).result()

