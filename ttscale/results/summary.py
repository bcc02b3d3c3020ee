"""A run's summary: accuracy with its interval, pass@k and the field's other measures, compute per
problem, latency and throughput (`summarize`), and the table the console shows (`format_summary`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ttscale.results.curves import field_metrics, graded_results, ks_for, pass_at_k
from ttscale.results.metrics import proportion_ci
from ttscale.types import Result


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
        # of the results generated in this part (none generated, a finished run read again: no rate)
        "completion_tokens_per_second": (sum(r.usage.completion_tokens for r in (results if fresh is None else fresh))
                                         / part if part > 0 and (fresh is None or fresh) else None),
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
    sized = [r for r in graded if r.candidates]
    if not sized:
        return None
    n = min(len(r.candidates) for r in sized)
    return {k: sum(pass_at_k(len(r.candidates), sum(bool(c.correct) for c in r.candidates), k) for r in graded) / len(graded)
            for k in ks_for(n)}



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
