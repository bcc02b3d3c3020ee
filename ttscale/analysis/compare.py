"""Paired comparison of two runs on the problems they share.

Two runs on the same problems are paired data: per problem, A and B are each right or wrong. Their
own accuracy intervals overlap long before the difference is uncertain, so this reports what a
comparison needs:

- the accuracy difference A - B with a paired bootstrap 95% interval (problems resampled with
  replacement, both runs' outcomes kept together; identical runs give 0 with the interval [0, 0]);
- the exact McNemar test: two-sided binomial test of the discordant problems (A right and B wrong
  against A wrong and B right) at p = 1/2;
- where the interval and the test disagree (one sees a difference, the other not), a note saying so;
  several comparisons against one baseline get a multiplicity note (`multiplicity_note`);
- wins / losses / ties per problem;
- each run's compute on the shared problems: generated tokens, verifier tokens, FLOPs.

Only problems present, graded and without error in both runs are compared; how many were dropped,
and why, is part of the result. Runs that share no problem are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ttscale.analysis.compute import flops
from ttscale.types import Result


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test (scipy.stats.binomtest) of the discordant
    problems, a_only of a_only + b_only at p = 1/2."""
    from scipy.stats import binomtest

    n = a_only + b_only
    if n == 0:
        return 1.0
    return min(1.0, float(binomtest(a_only, n, 0.5).pvalue))


def paired_bootstrap(diffs: Sequence[float], level: float = 0.95, resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean per-problem difference (problems resampled with
    both runs' outcomes kept together): scipy.stats.bootstrap on the differences."""
    from ttscale.results.metrics import bootstrap_ci

    return bootstrap_ci(diffs, level, resamples, seed)


def verdicts_agree(ci: tuple[float, float], p: float, alpha: float = 0.05) -> str | None:
    """None when the paired interval and McNemar say the same (both see a difference, or neither);
    else a sentence saying which says what (they test slightly different things and can disagree near
    the threshold)."""
    interval_sees = ci[0] > 0 or ci[1] < 0
    test_sees = p < alpha
    if interval_sees == test_sees:
        return None
    if interval_sees:
        return (f"the paired 95% interval excludes 0 but McNemar's p = {p:.3g} >= {alpha}: "
                "treat the difference as not established")
    return (f"McNemar's p = {p:.3g} < {alpha} but the paired 95% interval includes 0: "
            "treat the difference as not established")


def multiplicity_note(comparisons: int, alpha: float = 0.05) -> str | None:
    """Several comparisons against one baseline: the chance of one false 'significant' result grows;
    Bonferroni's threshold for `comparisons` tests."""
    if comparisons < 2:
        return None
    return (f"{comparisons} comparisons against one baseline: at alpha = {alpha} each, the chance of at least one "
            f"false positive is up to {1 - (1 - alpha) ** comparisons:.2f}; Bonferroni's per-comparison threshold is "
            f"p < {alpha / comparisons:.3g}")


def _compute(results: Sequence[Result], params: float | None, verifier_params: float | None) -> dict[str, Any]:
    n = len(results)
    per = [flops(r.usage, params, verifier_params) for r in results]
    return {"generated_tokens_per_problem": sum(r.usage.completion_tokens for r in results) / n,
            "verifier_tokens_per_problem": sum(r.usage.verifier_tokens for r in results) / n,
            "flops_per_problem": (sum(per) / n) if all(f is not None for f in per) else None}


def compare_results(a: Mapping[str, Result], b: Mapping[str, Result], params: tuple = (None, None),
                    verifier_params: tuple = (None, None), seed: int = 0) -> dict[str, Any]:
    """The paired comparison of two runs' results (problem id -> Result); see the module doc."""
    dropped: dict[str, int] = {"missing in A": 0, "missing in B": 0, "errored": 0, "not graded": 0}
    shared = []
    for pid in dict.fromkeys([*a, *b]):
        if pid not in a:
            dropped["missing in A"] += 1
        elif pid not in b:
            dropped["missing in B"] += 1
        elif a[pid].error is not None or b[pid].error is not None:
            dropped["errored"] += 1
        elif a[pid].correct is None or b[pid].correct is None:
            dropped["not graded"] += 1  # no reference, or the grader could not decide
        else:
            shared.append(pid)
    if not shared:
        raise ValueError(f"the runs share no comparable problem (dropped: {dropped})")
    ra = [float(bool(a[p].correct)) for p in shared]
    rb = [float(bool(b[p].correct)) for p in shared]
    wins = sum(x > y for x, y in zip(ra, rb))
    losses = sum(x < y for x, y in zip(ra, rb))
    diffs = [x - y for x, y in zip(ra, rb)]
    ci = paired_bootstrap(diffs, seed=seed)
    return {
        "problems": len(shared), "dropped": {k: v for k, v in dropped.items() if v},
        "accuracy_a": sum(ra) / len(ra), "accuracy_b": sum(rb) / len(rb),
        "difference": sum(diffs) / len(diffs), "difference_ci95": ci,
        "mcnemar_p": mcnemar_exact(wins, losses),
        "disagreement": verdicts_agree(ci, mcnemar_exact(wins, losses)),
        "wins": wins, "losses": losses, "ties": len(shared) - wins - losses,
        "compute_a": _compute([a[p] for p in shared], params[0], verifier_params[0]),
        "compute_b": _compute([b[p] for p in shared], params[1], verifier_params[1]),
    }


def compare_runs(run_a: str | Path, run_b: str | Path, seed: int = 0) -> dict[str, Any]:
    """compare_results on two run folders (their config.yaml gives the model sizes for FLOPs)."""
    from ttscale.analysis.report import _config
    from ttscale.results import load_results

    runs = [Path(run_a), Path(run_b)]
    for run in runs:
        if not (run / "results.jsonl").exists():
            raise FileNotFoundError(f"{run}: no results.jsonl (is it a ttscale run folder?)")
    configs = [_config(run) for run in runs]
    outcome = compare_results(load_results(runs[0] / "results.jsonl"), load_results(runs[1] / "results.jsonl"),
                              params=tuple((c.get("model") or {}).get("params") for c in configs),
                              verifier_params=tuple((c.get("verifier") or {}).get("params") for c in configs),
                              seed=seed)
    outcome["a"], outcome["b"] = str(runs[0]), str(runs[1])
    return outcome


def format_comparison(c: Mapping[str, Any]) -> str:
    low, high = c["difference_ci95"]
    ca, cb = c["compute_a"], c["compute_b"]

    def flops_text(x):
        return "-" if x is None else f"{x:.3g}"

    lines = [f"A (run): {c['a']}", f"B (baseline): {c['b']}",
             f"problems compared: {c['problems']}" + (f" (dropped: {c['dropped']})" if c["dropped"] else ""),
             f"accuracy A {c['accuracy_a']:.3f}, B {c['accuracy_b']:.3f}",
             f"difference A - B: {c['difference']:+.3f}, paired bootstrap 95% CI [{low:+.3f}, {high:+.3f}]",
             f"exact McNemar p = {c['mcnemar_p']:.4g} (A right, B wrong: {c['wins']}; A wrong, B right: "
             f"{c['losses']}; ties: {c['ties']})",
             *([f"note: {c['disagreement']}"] if c.get("disagreement") else []),
             f"generated tokens / problem: A {ca['generated_tokens_per_problem']:.1f}, "
             f"B {cb['generated_tokens_per_problem']:.1f}; verifier tokens: A {ca['verifier_tokens_per_problem']:.1f}, "
             f"B {cb['verifier_tokens_per_problem']:.1f}; FLOPs: A {flops_text(ca['flops_per_problem'])}, "
             f"B {flops_text(cb['flops_per_problem'])}"]
    return "\n".join(lines)
