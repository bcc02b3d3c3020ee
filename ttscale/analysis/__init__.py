"""Analysis of results: metrics with confidence intervals, scaling curves, compute and cost-of-pass,
leaderboards and plots. `load_run(RUN_DIR)` gives a run's problems as a pandas DataFrame,
`results_frame(results)` those of `ttscale.run` in memory."""

from ttscale.analysis.compute import Prices, compute_summary, cost_of_pass, flops
from ttscale.analysis.report import leaderboard, load_run, results_frame
from ttscale.results.metrics import bootstrap_ci, proportion_ci, wilson_ci

__all__ = ["Prices", "bootstrap_ci", "proportion_ci", "wilson_ci", "compute_summary", "cost_of_pass", "flops", "leaderboard", "load_run", "results_frame"]
