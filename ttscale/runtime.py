"""Run a strategy over many problems at once: bounded concurrency, seeding, progress, resumable
JSONL results, per-problem failure isolation, grading and usage accounting."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttscale.analysis.metrics import proportion_ci
from ttscale.provenance import question_hash
from ttscale.backends.base import AFFINITY, Backend, BackendUnavailable
from ttscale.graders.math import MathGrader
from ttscale.strategies.context import Context
from ttscale.strategies.strategy import Strategy
from ttscale.strategies.trace import Trace
from ttscale.tracing.recorder import TraceWriter
from ttscale.types import Problem, Result


log = logging.getLogger(__name__)


@dataclass
class RunResult:
    results: list[Result]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dataframe(self, params: float | None = None):
        """One row per problem (pandas; see ttscale.analysis.results_frame); `params`: the policy's
        parameter count, for FLOPs."""
        from ttscale.analysis import results_frame

        return results_frame(self.results, params=params)


def load_results(path: Path) -> dict[str, Result]:
    """Finished results by problem id. A partial last line (a killed write) is cut off the file."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        path.write_bytes(raw)
    done = {}
    for number, line in enumerate(raw.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = Result.from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a ttscale result line ({exc})") from None
        done[result.problem_id] = result
    return done


def pending(problems: Sequence[Problem], output: str | Path | None, retry_errors: bool = True) -> list[Problem]:
    """The problems a run into `output` would solve: those not in it yet, those that failed because no
    server answered, and (retry_errors) those that errored."""
    return _todo(problems, load_results(Path(output)) if output is not None else {}, retry_errors)


def _todo(problems: Sequence[Problem], done: dict[str, Result], retry_errors: bool) -> list[Problem]:
    return [p for p in problems if p.id not in done or _unavailable(done[p.id])
            or (retry_errors and done[p.id].error is not None)]


def _unavailable(result: Result) -> bool:
    """Whether a recorded problem failed only because no server answered (to be solved again). Lines
    written before results carried `error_type` are recognised by their error text."""
    if result.error_type is not None:
        return result.error_type == BackendUnavailable.__name__
    return result.error is not None and f"{BackendUnavailable.__name__}:" in result.error


def _quantiles(values: Sequence[float]) -> tuple[float, float] | None:
    """p50 and p95 (linear interpolation, numpy's default)."""
    if not values:
        return None
    import numpy as np

    p50, p95 = np.quantile(np.asarray(values, dtype=float), [0.5, 0.95])
    return float(p50), float(p95)


def summarize(results: Sequence[Result], wall_seconds: float, fresh: Sequence[Result] | None = None,
              part_seconds: float | None = None) -> dict[str, Any]:
    """Accuracy with its CI, coverage, pass@k and the field's other measures, compute per problem,
    latency and throughput.

    Accuracy is over graded problems: an errored problem is not a wrong answer, and neither is one the
    grader could not decide; both are counted beside it (`errors`, `undecided`). `wall_seconds`: the
    run's wall time, every part of it (a resumed run adds its parts); `part_seconds`: this part's, for
    the tokens per second of the results generated in it (`fresh`)."""
    from ttscale.analysis.curves import field_metrics, graded_results

    graded = graded_results(results)
    undecided = [r for r in results if r.correct is None and r.undecided and r.error is None]
    n = len(results)
    correct = [float(bool(r.correct)) for r in graded]
    covered = [float(any(c.correct for c in r.candidates)) for r in graded]

    def per_problem(total: float) -> float:
        return total / n if n else 0.0

    latency = _quantiles([r.usage.wall_seconds for r in results if r.error is None])
    first = _quantiles([r.info["first_answer_seconds"] for r in results
                        if r.error is None and r.info.get("first_answer_seconds") is not None])
    part = wall_seconds if part_seconds is None else part_seconds
    summary = {
        "problems": n,
        "errors": sum(r.error is not None for r in results),
        "graded": len(graded),
        # problems whose verdict the grader could not decide: not in accuracy's denominator, never "wrong"
        "undecided": len(undecided),
        "accuracy_over": "graded problems (errors and undecided problems are counted apart, not as wrong)",
        "accuracy": (sum(correct) / len(graded)) if graded else None,
        "accuracy_ci95": proportion_ci(correct),  # Wilson's interval (0/30 is not [0, 0])
        "pass_at_n": (sum(covered) / len(graded)) if graded else None,
        "pass_at_k": _pass_at_k(graded),
        **field_metrics(graded),
        # graded problems without a candidate (no finished solution): 0 in pass@k and curves
        "no_candidates": sum(not r.candidates for r in graded),
        "no_finished_solution": sum(bool(r.info.get("no_finished_solution")) for r in results),
        # compute per problem (over every problem, errored ones included: they spent it)
        "completion_tokens_per_problem": per_problem(sum(r.usage.completion_tokens for r in results)),
        "prompt_tokens_per_problem": per_problem(sum(r.usage.prompt_tokens for r in results)),
        "fresh_prompt_tokens_per_problem": per_problem(sum(r.usage.prompt_tokens - r.usage.cached_prompt_tokens
                                                           for r in results)),
        "verifier_tokens_per_problem": per_problem(sum(r.usage.verifier_tokens for r in results)),
        "verifier_calls_per_problem": per_problem(sum(r.usage.verifier_calls for r in results)),
        # generated + verifier tokens: the leaderboard's default compute axis
        "tokens_per_problem": per_problem(sum(r.usage.completion_tokens + r.usage.verifier_tokens for r in results)),
        "backend_calls": sum(r.usage.backend_calls for r in results),
        "verifier_calls": sum(r.usage.verifier_calls for r in results),
        "wall_seconds": wall_seconds,
        # the run's wall time shared over its problems (each problem's own time overlaps the others')
        "wall_seconds_per_problem": per_problem(wall_seconds),
        # each problem's own time from start to verdict (problems run concurrently)
        "latency_p50_seconds": latency[0] if latency else None,
        "latency_p95_seconds": latency[1] if latency else None,
        "completion_tokens_per_second": (sum(r.usage.completion_tokens for r in (results if fresh is None else fresh))
                                         / part if part > 0 else None),
    }
    sandboxed = [r for r in results if "sandbox_runs" in r.info]
    if sandboxed:  # selections that run programs (CodeT, MBR-exec): their sandbox runs and seconds
        summary["sandbox_runs_per_problem"] = per_problem(sum(r.info["sandbox_runs"] for r in sandboxed))
        summary["sandbox_seconds_per_problem"] = per_problem(sum(r.info.get("sandbox_seconds", 0.0) for r in sandboxed))
    if first:  # streaming searches: time from a problem's start to its first finished sample
        summary["first_answer_p50_seconds"], summary["first_answer_p95_seconds"] = first
    thinking = [c.stats["thinking_tokens"] for r in results for c in r.candidates if "thinking_tokens" in c.stats]
    if thinking:  # budget forcing: reasoning tokens, forced extensions included
        summary["thinking_tokens_per_problem"] = per_problem(sum(thinking))
    if undecided:  # what accuracy would be with every undecided problem wrong / right
        total = len(graded) + len(undecided)
        summary["accuracy_bounds"] = [sum(correct) / total, (sum(correct) + len(undecided)) / total]
    undecided_candidates = sum(c.correct is None and c.answer is not None for r in results for c in r.candidates)
    if undecided_candidates:
        summary["undecided_candidates"] = undecided_candidates
    accepted = [c for r in graded for c in r.candidates if c.verdict and c.verdict.get("visible")]
    if accepted:  # code: how often passing the visible tests meant passing all of them
        summary["visible_tests_accepted"] = len(accepted)
        summary["visible_tests_false_positive_rate"] = sum(not c.correct for c in accepted) / len(accepted)
    return summary


def _pass_at_k(graded: Sequence[Result]) -> dict[int, float] | None:
    """Unbiased pass@k (Chen et al. 2021) for k = 1, 2, 4, ... n (n: the fewest candidates of a problem
    that has any); a graded problem without candidates counts 0."""
    from ttscale.analysis.curves import ks_for, pass_at_k

    sized = [r for r in graded if r.candidates]
    if not sized:
        return None
    n = min(len(r.candidates) for r in sized)
    return {k: sum(pass_at_k(len(r.candidates), sum(bool(c.correct) for c in r.candidates), k) for r in graded) / len(graded)
            for k in ks_for(n)}


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
    todo = _todo(problems, done, retry_errors)
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


def parts_path(results_path: Path) -> Path:
    return results_path.with_name(results_path.stem + ".parts.jsonl")


def open_part(results_path: Path, earlier: Sequence[Result]) -> int:
    """Record that a part of the run starts now (its number): its wall time is known even if it is
    killed (from its results' finish times). A run resumed from before parts were kept gets its first
    part from its summary.json's wall time, or else its longest problem's own time (marked estimated)."""
    path = parts_path(results_path)
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    new = []
    if not lines and earlier:
        summary = results_path.parent / "summary.json"
        wall = None
        if summary.exists():
            try:
                wall = json.loads(summary.read_text()).get("wall_seconds")
            except ValueError:
                wall = None
        new.append({"part": 0, "wall_seconds": float(wall) if wall else max(r.usage.wall_seconds for r in earlier),
                    "solved": len(earlier), **({} if wall else {"estimated": True})})
    number = 1 + max((line.get("part", 0) for line in lines + new), default=-1)
    new.append({"part": number, "started": time.time()})
    with open(path, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in new)
    return number


def close_part(results_path: Path, number: int, wall: float, solved: int) -> None:
    with open(parts_path(results_path), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"part": number, "wall_seconds": wall, "solved": solved}) + "\n")


def run_wall_seconds(results_path: Path) -> float | None:
    """The wall time of every part of the run whose results are at `results_path` (None when no part
    was recorded). A part that never closed (the run was killed) lasted until its last result."""
    path = parts_path(results_path)
    if not path.exists():
        return None
    parts: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            parts.setdefault(entry.get("part", len(parts)), {}).update(entry)
    finished = []
    if results_path.exists():
        for line in results_path.read_text(errors="replace").splitlines():
            try:
                stamp = json.loads(line).get("info", {}).get("finished_at")
            except ValueError:
                continue
            if stamp is not None:
                finished.append(float(stamp))
    starts = sorted(p["started"] for p in parts.values() if "started" in p)
    total = 0.0
    for part in parts.values():
        if "wall_seconds" in part:
            total += float(part["wall_seconds"])
        elif "started" in part:  # killed: until its last result, before the next part started
            later = [s for s in starts if s > part["started"]]
            end = later[0] if later else float("inf")
            own = [t for t in finished if part["started"] <= t < end]
            total += (max(own) - part["started"]) if own else 0.0
    return total


def run(strategy: Strategy, problems: Sequence[Problem], backend: Backend, **kwargs: Any) -> RunResult:
    """Synchronous `arun`. Works inside a running event loop too (a notebook): it then runs in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(strategy, problems, backend, **kwargs))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, arun(strategy, problems, backend, **kwargs)).result()


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_short(v)}" if not isinstance(v, dict) else f"{k}: {{{_short(v)}}}"
                         for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return "-" if value is None else str(value)


def format_summary(summary: dict[str, Any]) -> str:
    """A small aligned table of the summary for terminals (a stand-in model's run says so first)."""
    rows = [(key, _short(value)) for key, value in summary.items() if key != "provenance"]  # too long here
    width = max(len(k) for k, _ in rows)
    table = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
    if summary.get("stand_in"):
        table = (f"STAND-IN RUN: backend={summary.get('backend')} is no model; these numbers show the pipeline, "
                 "they are no result\n" + table)
    return table
