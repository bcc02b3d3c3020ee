"""Analysis of results: metrics with confidence intervals, scaling curves, compute and cost-of-pass,
leaderboards and plots. `load_run(RUN_DIR)` gives a run's problems as a pandas DataFrame,
`results_frame(results)` those of `ttscale.run` in memory."""

from ttscale.analysis.compute import Prices, compute_summary, cost_of_pass, flops
from ttscale.analysis.metrics import bootstrap_ci, proportion_ci, wilson_ci


# report.py imports the runtime, which imports this package's metrics: import it on call, not here
def load_run(run):
    """A run folder's problems as a pandas DataFrame (one row per problem)."""
    from ttscale.analysis.report import load_run as _load_run

    return _load_run(run)


def results_frame(results, params=None, verifier_params=None, columns=None):
    """Results (a list, or the RunResult of `ttscale.run`) as a pandas DataFrame, one row per problem."""
    from ttscale.analysis.report import results_frame as _results_frame

    return _results_frame(results, params, verifier_params, columns)


def leaderboard(runs):
    """One row per run folder (sweep folders expand to their jobs): accuracy with CI and compute."""
    from ttscale.analysis.report import leaderboard as _leaderboard

    return _leaderboard(runs)


__all__ = ["Prices", "bootstrap_ci", "proportion_ci", "wilson_ci", "compute_summary", "cost_of_pass", "flops", "leaderboard", "load_run", "results_frame"]
